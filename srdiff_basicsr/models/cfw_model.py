from collections import OrderedDict

import torch
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from srdiff_basicsr.errors import DatasetError, DivergenceError, is_int, is_number, require
from srdiff_basicsr.host import distributed
from srdiff_basicsr.loading.weights import load_weights
from srdiff_basicsr.models.accumulation import GradientAccumulation
from srdiff_basicsr.models.checkpointed import CheckpointedTraining
from srdiff_basicsr.models.stablesr_sources import check_starting_weights


@MODEL_REGISTRY.register()
class CFWModel(CheckpointedTraining, GradientAccumulation, SRGANModel):
    """StableSR's second stage (the official ``AutoencoderKLResi``): the CFW fusion layers of the VAE decoder
    trained, everything else frozen, to decode the first stage's sampled latents into the HR image with the
    encoder features of the upsampled LR; the LDM autoencoder loss as StableSR configures it: L1 + LPIPS, and
    from ``train.disc_start`` a hinge GAN against a PatchGAN discriminator at a fixed weight.

    Options (BasicSR's SRGANModel's otherwise):
        network_g: the ``CFWAutoencoder``, from ``path.pretrain_network_g``: a converted StableSR CFW checkpoint, or
            a plain VAE (``strict_load_g: false``: the fusion layers start from their initialisation, the official's
            start from SD 2.1's VAE).
        network_d: ``PatchGANDiscriminator`` (3, 64, 3), trained by ``train.optim_d``.
        datasets: ``CFWLatentDataset`` (the triplets ``scripts/generate_cfw_data.py`` writes).
        scale_factor: the latents' (0.18215, SD's): the dataset's latents are divided by it before decoding.
        train.fidelity, val.fidelity: CFW's weight w while training and validating (the official config: 1.0).
        train.pixel_opt: the official L1 on [-1, 1] images is ``{type: L1Loss, loss_weight: 2.0}`` on [0, 1].
        train.perceptual_opt: ``{type: LPIPSLoss, net: vgg, loss_weight: 1.0}`` (the official); LPIPS needs
            torchvision's VGG16 weights in torch's hub cache; without them the run stops naming the file, and
            leaving ``perceptual_opt`` out trains with L1 + GAN only (logged).
        train.gan_opt: ``{type: GANLoss, gan_type: hinge, loss_weight: 0.025}``: the official generator weight
            (its adaptive weight needs the gradient of the frozen last decoder layer, so it falls back to
            disc_weight 0.025); the discriminator's loss is half the hinge sum, as the official.
        train.disc_start: optimizer steps before the GAN terms count (the official 501; without accumulation
            BasicSR's iterations from 1, so they count from iteration disc_start + 1). Both optimizers step every
            time, the discriminator's on zero gradients before then, as the official.
        train.accumulate_grad_batches: batches per optimizer step (the official 8 batches of 1;
            ``models.accumulation``).
        train.optim_g, train.optim_d: the official ``{type: Adam, lr: 5e-5, betas: [0.5, 0.9]}`` (its main.py
            scales the rate only with --scale_lr, which the official commands turn off).
    """

    @classmethod
    def check_run_options(cls, opt):
        """What StableSR's CFW stage needs besides BasicSR's SRGANModel options, and its starting weights on disk."""
        check_starting_weights(opt, ('pretrain_network_g', ))
        for section in ('network_g', 'network_d'):
            require(opt.get(section), lambda v: isinstance(v, dict) and 'type' in v, section,
                    'a network section with a type (CFWAutoencoder, PatchGANDiscriminator)')
        for where in ('train', 'val'):
            fidelity = (opt.get(where) or {}).get('fidelity', 1.0)
            require(fidelity, lambda v: is_number(v) and 0 <= v <= 1, f'{where}.fidelity', 'a number in [0, 1]')
        if opt.get('is_train'):
            train_opt = opt.get('train') or {}
            for key in ('optim_g', 'optim_d', 'gan_opt'):
                require(train_opt.get(key), lambda v: isinstance(v, dict) and 'type' in v, f'train.{key}',
                        'a section with a type (see options/train_stablesr_stage2.yml)')
            require(train_opt.get('disc_start', 501), lambda v: is_int(v) and v >= 0, 'train.disc_start',
                    'an integer >= 0 (optimizer steps before the GAN terms count)')

    def __init__(self, opt):
        self.scale_factor = opt.get('scale_factor', 0.18215)
        self.fidelity = {'train': (opt.get('train') or {}).get('fidelity', 1.0),
                         'val': (opt.get('val') or {}).get('fidelity', 1.0)}
        if opt.get('val') is not None:
            opt['val'].setdefault('suffix', None)  # SRModel's test-time saving reads it unguarded
        super().__init__(opt)

    def model_to_device(self, net):
        if net is getattr(self, 'net_g', None) and self.is_train:  # before DDP sees which parameters train
            for name, param in net.named_parameters():
                param.requires_grad_(name.startswith('fusion.'))
            if not any(p.requires_grad for p in net.parameters()):
                raise ValueError('network_g: this CFWAutoencoder has no fusion layers to train (cfw: false)')
        return distributed.model_to_device(self, net)

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Our loader (``.pth`` or ``.safetensors``, mismatches named); strict when testing, so that a file without
        trained fusion layers is never evaluated."""
        load_weights(self.get_bare_model(net), load_path, param_key, strict or not self.is_train,
                     option=f'weights of {type(net).__name__}')

    def init_training_settings(self):
        super().init_training_settings()
        train_opt = self.opt['train']
        self.disc_start = train_opt.get('disc_start', 501)
        if self.cri_perceptual is None:
            get_root_logger().warning('CFW stage without train.perceptual_opt: trained with L1 + GAN only (the '
                                      'official adds LPIPS)')

    def setup_optimizers(self):
        train_opt = self.opt['train']
        for key, net in (('optim_g', self.net_g), ('optim_d', self.net_d)):
            optim_opt = dict(train_opt[key])
            optimizer = self.get_optimizer(optim_opt.pop('type'), [p for p in net.parameters() if p.requires_grad],
                                           **optim_opt)
            setattr(self, f'optimizer_{key[-1]}', optimizer)
            self.optimizers.append(optimizer)

    def feed_data(self, data):
        if 'latent' not in data:
            raise DatasetError("CFWModel: the dataset gives no 'latent'; train and validate on CFWLatentDataset "
                               '(a folder written by scripts/generate_cfw_data.py)')
        self.lq, self.latent = data['lq'].to(self.device), data['latent'].to(self.device)
        vae = self.get_bare_model(self.net_g)
        expected = (vae.post_quant_conv.in_channels, self.lq.shape[-2] // vae.factor, self.lq.shape[-1] // vae.factor)
        if tuple(self.latent.shape[1:]) != expected:
            raise DatasetError(f'{data["lq_path"][0]}: its latent is {tuple(self.latent.shape[1:])}, network_g takes '
                               f'{expected} for this image (latents of another VAE, or the wrong latent_factor)')
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)

    def _reconstruct(self, net, fidelity):
        """The decoded latents in [-1, 1]."""
        return net(self.lq * 2 - 1, self.latent / self.scale_factor, fidelity)

    def optimize_parameters(self, current_iter):
        """One batch; the optimizers step after it, or after ``train.accumulate_grad_batches`` batches (the
        official's 8 of 1). The GAN terms count once ``disc_start`` optimizer steps are done (Lightning's
        global_step, as the official)."""
        disc_factor = 1.0 if self.steps_before(current_iter) >= self.disc_start else 0.0
        starts, ends = self.starts_step(current_iter), self.ends_step(current_iter)
        for p in self.net_d.parameters():
            p.requires_grad = False
        if starts:
            self.optimizer_g.zero_grad()
        reconstruction = self._reconstruct(self.net_g, self.fidelity['train'])
        self.output = (reconstruction + 1) / 2
        losses = OrderedDict()
        if self.cri_pix:
            losses['l_g_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_perceptual:
            losses['l_g_percep'] = self.cri_perceptual(self.output, self.gt)
        losses['l_g_gan'] = disc_factor * self.cri_gan(self.net_d(reconstruction), True, is_disc=False)
        self._backward(self.optimizer_g, sum(losses.values()), current_iter, ends, 'generator')

        for p in self.net_d.parameters():
            p.requires_grad = True
        if starts:
            self.optimizer_d.zero_grad()
        real, fake = self.net_d(self.gt * 2 - 1), self.net_d(reconstruction.detach())
        losses['l_d'] = disc_factor * 0.5 * (self.cri_gan(real, True, is_disc=True) +
                                             self.cri_gan(fake, False, is_disc=True))
        losses['out_d_real'], losses['out_d_fake'] = real.detach().mean(), fake.detach().mean()
        self._backward(self.optimizer_d, losses['l_d'], current_iter, ends, 'discriminator')
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0 and ends:
            self.model_ema(decay=self.ema_decay)

    def _backward(self, optimizer, loss, current_iter, step, what):
        """Backward (the loss divided by the batches per step); with ``step``, the step on the accumulated
        gradients. A non-finite loss or gradient stops the run before the weights change."""
        (loss / self.accumulate).backward()
        if not step:
            return
        params = [p for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
        finite = torch.isfinite(loss.detach()) & torch.stack([torch.isfinite(p.grad).all() for p in params]).all()
        if not distributed.all_ranks_agree(bool(finite), self.device):
            raise DivergenceError(f'iteration {current_iter}: the {what} loss or its gradient is not finite (the run '
                                  'diverged); no step taken and no checkpoint of it written. Lower the learning rate '
                                  'or resume from the last checkpoint with --auto_resume')
        optimizer.step()

    def test(self):
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = ((self._reconstruct(net, self.fidelity['val']) + 1) / 2).clamp(0, 1)
        net.train(was_training)
