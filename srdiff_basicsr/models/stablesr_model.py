import torch
from basicsr.archs import build_network
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from srdiff_basicsr.loading.weights import load_weights
from srdiff_basicsr.models.srdiff_model import SRDiffModel
from srdiff_basicsr.models.stablesr_sources import check_starting_weights


@MODEL_REGISTRY.register()
class StableSRModel(SRDiffModel):
    """StableSR's first stage in BasicSR's loop: the time-aware encoder and the U-Net's SPADE layers trained, the rest
    of the U-Net (Stable Diffusion's), the VAE and the empty prompt's embedding frozen; the eps loss on the VAE
    latent of the HR image, noised at a random step, the encoder reading the clean latent of the upsampled LR image
    at that step (the official ``LatentDiffusionSRTextWT``). SRDiffModel's training step, guards, precision,
    validation and checkpoints otherwise.

    Options (besides SRDiffModel's; ``diffusion.space: vae_latent``):
        network_vae: the VAE (``CFWAutoencoder``), loaded from ``path.pretrain_network_vae`` (``param_key_vae``,
            default ``params``), frozen, saved with every checkpoint (``net_vae``).
        network_encoder: the time-aware encoder, from ``path.pretrain_network_encoder`` when set (a StableSR
            checkpoint's), else from its initialisation (the official's first stage).
        path.pretrain_network_g: the U-Net (a StableSR checkpoint's, or SD 2.1's converted by
            ``scripts/convert_sd_diffusers.py``: its SPADEs then start from their initialisation); its SPADEs train.
        train.optim_g: one optimizer over the SPADEs and the encoder (the official: ``{type: AdamW, lr: 5e-5}``;
            AdamW added to BasicSR's Adam).
        train.pixel_opt: the official loss is the mean squared error on eps (``{type: MSELoss, loss_weight: 1.0}``).
    """

    @classmethod
    def check_run_options(cls, opt):
        check_starting_weights(opt, ('pretrain_network_g', 'pretrain_network_vae'))
        super().check_run_options(opt)

    def model_to_device(self, net):
        if net is getattr(self, 'net_g', None) and self.is_train:  # before DDP sees which parameters train
            for name, param in net.named_parameters():
                param.requires_grad_('spade' in name)
        return super().model_to_device(net)

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """The U-Net; for training, a file without SPADEs (SD 2.1's, ``scripts/convert_sd_diffusers.py``) starts them
        from their initialisation, as the official; any other key it lacks is an error."""
        initialised = load_weights(self.get_bare_model(net), load_path, param_key, strict,
                                   option=f'weights of {type(net).__name__}',
                                   may_miss=(lambda key: '.spade.' in key) if self.is_train else None)
        if initialised:
            get_root_logger().info(f'{load_path}: {len(initialised)} SPADE tensors not in the file, initialised')

    def _build_encoder(self):
        """The time-aware encoder: trained with the SPADEs when training (from ``path.pretrain_network_encoder`` when
        set, else from its initialisation), frozen when testing."""
        path_opt = self.opt['path']
        encoder = build_network(self.opt['network_encoder']).to(self.device)
        if path_opt.get('pretrain_network_encoder'):
            load_weights(encoder, path_opt['pretrain_network_encoder'], path_opt.get('param_key_encoder', 'params'),
                         path_opt.get('strict_load_encoder', True), option='path.pretrain_network_encoder')
        self.encoder_trained, self.encoder_losses = self.is_train, {}
        self.net_encoder = (self.model_to_device(encoder.train()) if self.is_train
                            else encoder.eval().requires_grad_(False))
        get_root_logger().info(f"Time-aware encoder {'trained' if self.is_train else 'loaded'}")

    def setup_optimizers(self):
        """One optimizer over the SPADEs and the time-aware encoder, as the official."""
        optim_opt = dict(self.opt['train']['optim_g'])
        params = [p for p in self.net_g.parameters() if p.requires_grad] + list(self.net_encoder.parameters())
        self.optimizer_g = self.get_optimizer(optim_opt.pop('type'), params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type == 'AdamW':
            return torch.optim.AdamW(params, lr, **kwargs)
        return super().get_optimizer(optim_type, params, lr, **kwargs)
