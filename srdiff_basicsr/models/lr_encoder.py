"""The LR encoder of an SRDiff-family BasicSR model: built from its pretrained file, frozen (the paper) or trained
with the U-Net (the official ``fix_rrdb: false``), with its auxiliary losses and its own EMA copy."""
import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger

from srdiff_basicsr.loading.weights import load_weights


class LREncoderTraining:
    """Mixin of a BasicSR model with ``network_encoder`` and ``path.pretrain_network_encoder``: sets
    ``net_encoder`` (+ ``net_encoder_ema``), ``encoder_trained``, ``encoder_losses``, ``optimizer_encoder``."""

    def _build_encoder(self):
        """``network_encoder`` from ``path.pretrain_network_encoder``: frozen, or trained with network_g when
        ``train.optim_encoder`` is set (then wrapped for several processes, with its auxiliary losses and,
        with ``train.ema_decay``, its own EMA copy, loaded from the file's ``params_ema`` when it has one)."""
        path_opt, train_opt = self.opt['path'], (self.opt.get('train') or {}) if self.is_train else {}
        encoder_path = path_opt['pretrain_network_encoder']
        param_key = path_opt.get('param_key_encoder', path_opt.get('param_key_g', 'params'))  # EMA with EMA

        def loaded(key):
            net = build_network(self.opt['network_encoder']).to(self.device)
            load_weights(net, encoder_path, key, path_opt.get('strict_load_encoder', True),
                         option='path.pretrain_network_encoder')
            return net

        self.encoder_trained = 'optim_encoder' in train_opt
        if not self.encoder_trained:
            self.net_encoder = loaded(param_key).eval().requires_grad_(False)
            get_root_logger().info(f'Loaded the frozen encoder from {encoder_path}')
            return
        self.net_encoder = self.model_to_device(loaded(param_key).train())
        self.encoder_losses = {name: build_loss(dict(loss_opt)).to(self.device)
                               for name, loss_opt in train_opt['encoder_losses'].items()}
        if train_opt.get('ema_decay', 0) > 0:
            self.net_encoder_ema = loaded('params_ema').eval().requires_grad_(False)
        get_root_logger().info(f'Training the encoder with the U-Net (train.optim_encoder), from {encoder_path}; '
                               f'auxiliary losses on its SR output: {", ".join(self.encoder_losses) or "none"}')

    def _setup_encoder_optimizer(self):
        """``train.optim_encoder``'s optimizer, one of ``self.optimizers`` (so BasicSR saves and resumes it)."""
        if self.encoder_trained:
            optim_opt = dict(self.opt['train']['optim_encoder'])
            self.optimizer_encoder = self.get_optimizer(optim_opt.pop('type'), self.net_encoder.parameters(),
                                                        **optim_opt)
            self.optimizers.append(self.optimizer_encoder)

    def _encode(self):
        """The encoder's feature maps of the LR batch; when it trains, also its losses (``l_encoder_<name>``)
        between its own SR output and the HR (images in [0, 1]). None for a condition that runs the encoder itself
        (``lr_features`` false: StableSR's, at every step)."""
        if not self.pipeline.condition_type.lr_features:
            return None, {}
        if not self.encoder_trained:
            with torch.no_grad():
                return self.net_encoder.features(self.lq), {}
        sr, features = self.net_encoder(self.lq, return_features=True)  # through DDP's forward, which syncs
        return features, {f'l_encoder_{name}': loss(sr, self.gt) for name, loss in self.encoder_losses.items()}

    def _update_encoder_ema(self, decay):
        if hasattr(self, 'net_encoder_ema'):
            ema_update(self.net_encoder_ema, self.get_bare_model(self.net_encoder), decay)


def ema_update(ema_net, net, decay):
    """ema = decay * ema + (1 - decay) * net, parameter by parameter (BasicSR's ``model_ema``, for any net)."""
    params = dict(net.named_parameters())
    for name, ema_param in ema_net.named_parameters():
        ema_param.data.mul_(decay).add_(params[name].data, alpha=1 - decay)
