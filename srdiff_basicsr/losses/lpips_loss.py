"""LPIPS as a BasicSR training loss: the perceptual term of the LDM autoencoder loss that StableSR's CFW stage
trains with (VGG16 trunk and the LPIPS v0.1 heads, as taming's ``LPIPS``)."""
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.metrics.lpips_metric import lpips_network

MIN_SIZE = 32  # AlexNet's and VGG's last pooling


@LOSS_REGISTRY.register()
class LPIPSLoss(nn.Module):
    """loss_weight x the batch mean of LPIPS between images in [0, 1] (N, 3, H, W); gradients reach the images,
    the network stays frozen.

    Args: loss_weight; net (vgg, the LDM loss's | alex); random_trunk: an untrained trunk, for tests of the
    plumbing only (its values mean nothing). The trunk's ImageNet weights must be in torch's hub cache (the
    error names the file to put there).
    """

    def __init__(self, loss_weight=1.0, net='vgg', random_trunk=False):
        super().__init__()
        self.loss_weight, self.net, self.random_trunk = loss_weight, net, random_trunk
        lpips_network(net, 'cpu', random_trunk)  # a missing weight file stops the run here, before training

    def forward(self, pred, target, **kwargs):
        if min(pred.shape[-2:]) < MIN_SIZE:
            raise OptionsError(f'LPIPSLoss: images of {tuple(pred.shape[-2:])} pixels are too small for its trunk '
                               f'(at least {MIN_SIZE} a side; raise the training crop, gt_size)')
        network = lpips_network(self.net, pred.device, self.random_trunk)
        return self.loss_weight * network(pred, target, normalize=True).mean()
