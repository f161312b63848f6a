"""What the U-Net is conditioned on, and the U-Net run with it: the one way every caller (the pipeline, tiles,
training, image-quality fine-tuning, the distillation teacher) evaluates a network.

A condition is one class with ``at(t, box=None)``: the condition of step (or time) t, for the whole canvas or
for the HR box (top, left, height, width) of a tile; ``of_lr`` (sampling) and ``for_training`` (a training step,
the encoder's gradient kept when it trains) make it, and ``lr_features`` says whether it is made from the
encoder's features of the LR image (the training step computes them once, with their auxiliary losses). SRDiff, SRADM and ECDP condition once per image
(``ProjectedCondition``, t unused); a per-step one (StableSR's time-aware encoder) is another class.
"""
import torch


class ProjectedCondition:
    """The U-Net's projection (``project_condition``) of the encoder's LR feature maps and of lr_up (SRDiff's
    ``up_input``), computed once per image, the first time it is asked for (inside the caller's autocast).

    A tile's is projected from its LR region with a margin of one LR pixel: the projections are local (a
    transposed convolution reaching one LR pixel further, a 3x3 convolution of lr_up), so it equals that region
    of the whole image's condition.

    Args:
        unet: has ``project_condition(features, lr_up)``.
        features (list[Tensor]): the encoder's feature maps of the LR image.
        lr_up (Tensor): the upsampled LR image in [0, 1] (the network takes it in [-1, 1]).
        scale (int): HR / LR size ratio.
    """

    lr_features = True

    def __init__(self, unet, features, lr_up, scale):
        self.project, self.features, self.lr_up, self.scale = unet.project_condition, features, lr_up * 2 - 1, scale
        self._whole = None

    @classmethod
    def of_lr(cls, encoder, unet, lr, lr_up, scale):
        return cls.for_training(unet, encoder, encoder.features(lr), lr_up, scale)

    @classmethod
    def for_training(cls, unet, encoder, features, lr_up, scale):
        return cls(unet, features, lr_up, scale)

    def at(self, t, box=None):
        if box is not None:
            return self._region(*box)
        if self._whole is None:
            self._whole = self.project(self.features, self.lr_up)
        return self._whole

    def _region(self, top, left, h, w):
        s = self.scale
        lr_top, lr_left = top // s, left // s
        lr_h, lr_w = self.features[0].shape[-2:]
        y0, x0 = max(lr_top - 1, 0), max(lr_left - 1, 0)
        y1, x1 = min(lr_top + h // s + 1, lr_h), min(lr_left + w // s + 1, lr_w)
        cond = self.project([f[..., y0:y1, x0:x1] for f in self.features], self.lr_up[..., y0 * s:y1 * s, x0 * s:x1 * s])
        f = cond.shape[-1] // (x1 - x0)  # s for an HR-size condition, 1 for an LR-size one (ECDP's own)
        dy, dx = (lr_top - y0) * f, (lr_left - x0) * f
        return cond[..., dy:dy + h * f // s, dx:dx + w * f // s]


class TimeAwareCondition:
    """StableSR's condition of a step: the text context (the empty prompt's embedding, ``unet.empty_context``) and
    the time-aware encoder's maps of the clean LR latent at the step's timestep, computed at every step (the
    encoder is conditioned on t). A tile's is the encoder's maps of its latent box.

    Args:
        encoder: ``encoder(latent, t) -> {str(width): map}``.
        latent (Tensor): the LR image's latent (the space's reference).
        context (Tensor): (1 or N, tokens, channels).
    """

    lr_features = False  # the encoder runs at every step, on the latent

    def __init__(self, encoder, latent, context):
        self.encoder, self.latent = encoder, latent
        self.context = context.expand(latent.shape[0], *context.shape[1:])

    @classmethod
    def of_lr(cls, encoder, unet, lr, reference, scale):
        return cls.for_training(unet, encoder, None, reference, scale)

    @classmethod
    def for_training(cls, unet, encoder, features, reference, scale):
        return cls(encoder, reference.latent, unet.empty_context)

    def at(self, t, box=None):
        latent = self.latent
        if box is not None:
            top, left, h, w = box
            latent = latent[..., top:top + h, left:left + w]
        return self.context, self.encoder(latent, t)


def timed_network(unet, schedule, channels_last=False):
    """(x, t, cond) -> ``unet(x, schedule.network_time(t), cond)``: t integer steps or real times, as the schedule
    gives the network its time (SRDiff: the step; ECDP: its rescaled continuous time)."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def network(x, t, cond):  # x in the network's memory format, whatever its source (a permuted NHWC batch)
        return unet(x.contiguous(memory_format=memory_format), schedule.network_time(t), cond)
    return network


def conditioned_network(network, condition):
    """(x_t, t) -> ``network(x_t, t, condition.at(t))``, for a ``timed_network``."""
    return lambda x_t, t: network(x_t, t, condition.at(t))
