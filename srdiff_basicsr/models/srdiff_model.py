import copy
from os import path as osp

import torch
from basicsr.archs import build_network
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY

from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.errors import DatasetError
from srdiff_basicsr.execution import compiled, resolve_execution
from srdiff_basicsr.host import checkpoints, distributed
from srdiff_basicsr.loading.model_folder import write_manifest
from srdiff_basicsr.loading.weights import load_weights
from srdiff_basicsr.models.accumulation import GradientAccumulation
from srdiff_basicsr.models.checkpointed import CheckpointedTraining
from srdiff_basicsr.models.collapse import COLLAPSE_DEFAULT, CollapseGuard
from srdiff_basicsr.models.degraded_training import DegradedTraining
from srdiff_basicsr.models.evaluation import SampledValidation
from srdiff_basicsr.models.lr_encoder import LREncoderTraining
from srdiff_basicsr.models.objectives import OBJECTIVES
from srdiff_basicsr.models.options import check_options, complete_options
from srdiff_basicsr.models.step_guards import GuardedStep
from srdiff_basicsr.network_options import diffusion_options, network_label
from srdiff_basicsr.pipeline import SRDiffPipeline


@MODEL_REGISTRY.register()
class SRDiffModel(CheckpointedTraining, GradientAccumulation, DegradedTraining, SampledValidation, LREncoderTraining,
                  GuardedStep, SRModel):
    """SRDiff: diffusion of the residual HR - bicubic(LR), conditioned on an RRDB encoder (frozen by default).

    BasicSR's SRModel does the rest: optimiser, scheduler, EMA, checkpoints, logging. This class adds
    the training step of the diffusion and the validation by sampling; sampling itself is the
    ``SRDiffPipeline`` in ``self.pipeline`` (built on the EMA network when kept).

    Options (besides BasicSR's):
        network_g: the noise predictor (``SRDiffUNet``), trained with ``train.optim_g``,
            ``train.scheduler``, ``train.ema_decay``.
        network_encoder: the LR encoder (``SRDiffRRDBNet``), loaded from ``path.pretrain_network_encoder``
            (``param_key_encoder``, default ``param_key_g``'s; ``strict_load_encoder``), e.g. the ``net_g``
            of an encoder pretraining run. Frozen, as the paper; ``train.optim_encoder`` (e.g. ``{type: Adam,
            lr: 1e-5}``) trains it with network_g (the official ``fix_rrdb: false``), with
            ``train.encoder_losses`` (BasicSR losses between its own SR output and the HR, images in [0, 1];
            default ``{l1: {type: L1Loss, loss_weight: 2.0}}``, the official auxiliary L1 on [-1, 1] images)
            and, with ``train.ema_decay``, an EMA copy saved as its ``params_ema``. It is saved with every
            checkpoint, so the experiment folder alone is enough to test or resume.
        diffusion: schedule (cosine: timesteps 100, cosine_s 0.008 | vp, ECDP's: timesteps 300, beta_min,
            beta_max, t_max), res_rescale (2), clip_x0 (true), parametrization (eps | x0 | v | hybrid; what
            network_g predicts).
        train.pixel_opt: the loss between network_g's output and its target, from BasicSR's loss
            registry (default ``{type: L1Loss, loss_weight: 1.0}``, the paper's; ``MSELoss`` for L2).
        train.precision (auto | fp32 | bf16 | fp16, autocast; auto: bf16 where the device computes it
            natively, else fp32; fp16 with a gradient scaler, CUDA only), train.channels_last (default: with
            auto's bf16), train.compile: speed of the training step (weights, EMA, optimizer state and
            checkpoints stay fp32).
        train.head_weights: for a network with several heads (hybrid: ``{eps: 1, x0: 1}``, ECDP's unweighted
            sum), the weight of each head's ``train.pixel_opt`` loss (``l_noise_<head>``); 0 leaves a head untrained.
        train.objective: ``{type: noise}`` (default) the diffusion loss above; ``{type: distillation, teacher,
            steps}`` progressive distillation (Salimans & Ho 2022) of the teacher (an experiment folder, its EMA
            weights when saved, or a converted checkpoint) into a student sampled by DDIM in ``steps`` steps: the
            student starts from the teacher and must have its networks and diffusion except the parametrization
            (same number of heads; few-step students use v), the target of a DDIM step of the student being where
            two of the teacher land, with ``train.pixel_opt``; ``{type: image_quality, ...}``
            ECDP's fine-tuning stage: instead of the diffusion loss, ``loss`` (a BasicSR loss;
            default ECDP's L1 between VGG19 conv5_4 features, ``PerceptualLoss`` with perceptual_weight 0.5) between
            the HR and an SR sample of the probability-flow ODE (``rtol``, ``atol``, ``method``: 1e-3, 1e-3,
            dopri5), back-propagated through the solve by the adjoint method (``adjoint``: true; false: plain
            back-propagation, memory growing with the steps); ``flow``: ode (to step 0, then the denoiser's x0) or
            ode_vp (ECDP's: in VP time to ``t_end``, 0.1). ECDP: lr 1e-5, ema_decay 0.9, about 1k steps.
        train.grad_clip: ``{norm: c}`` scales the gradients of all trained networks to a total L2 norm of at
            most c (``clip_grad_norm_``); ``{value: c}`` clamps each gradient entry to [-c, c] (``clip_grad_value_``,
            as ECDP); with ``norm`` the gradient norm before clipping is logged (``grad_norm``). Warm-up is
            BasicSR's ``train.warmup_iter`` (linear, from 0).
        train.collapse: ``{intervals: 3, level: 0.95}`` (the default; ``~``: off): a run whose noise loss, having
            been below ``level`` x the loss of an all-zero output, is back above it for ``intervals`` logged
            intervals in a row (the network collapsed to ~0) stops naming the iteration.
        train.skip_nonfinite: a non-finite loss or gradient stops training naming the iteration
            (default); true skips such steps instead, counted and logged. A checkpoint with non-finite
            weights is never written.
        device: e.g. ``cuda:1`` for a single-process test or benchmark (BasicSR itself uses ``cuda``).
        val.seed: seed of the sampling noise in validation/test (default: manual_seed); image i of a
            dataset is sampled with seed + i, so every validation draws the same samples.
        val.protocol: paper (RGB, no border crop) | basicsr (Y channel, crop_border = scale), set on
            every metric that has those options; the protocol used is logged and written either way.
        val.num_samples: SR samples drawn per LR image (default 1). Every metric is averaged over
            the samples (metrics receive the LR as ``lq`` too, for LR-PSNR); with 2 or more, ``sigma``
            is reported: the standard deviation across samples of each pixel (and channel) of the
            8-bit SR images, on the 0-255 scale (population std), averaged over pixels and images.
        val.sampler, val.tile, val.colour_fix: how samples are drawn; val.precision,
            val.channels_last, val.compile: their speed (see ``SRDiffPipeline``).
    """

    def __init__(self, opt):
        check_options(complete_options(opt))
        super().__init__(opt)  # builds and loads net_g, sets up training (SRModel's, with train.pixel_opt)
        if not hasattr(self, 'net_encoder'):  # a test: no training set-up built them
            self._build_encoder()
            self._build_space_networks()
        if opt.get('device'):  # BasicSR's choice is plain 'cuda' or 'cpu'
            self.device = torch.device(opt['device'])
            for net in (getattr(self, name, None) for name in ('net_g', 'net_g_ema', 'net_encoder', 'net_encoder_ema')):
                if net is not None:
                    net.to(self.device)
            for net in self.space_networks().values():
                net.to(self.device)
        val_opt = opt.get('val') or {}
        sampling_unet = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        sampling_encoder = (self.net_encoder_ema if hasattr(self, 'net_encoder_ema')
                            else self.get_bare_model(self.net_encoder))
        self.pipeline = SRDiffPipeline.from_networks(
            sampling_encoder, sampling_unet, opt['scale'], opt.get('diffusion'), self.space_networks(),
            options={section: opt[section] for section in ('network_g', 'network_encoder', *self.space_entry.networks)},
            sampler=val_opt.get('sampler'),
            tile=val_opt.get('tile'), colour_fix=val_opt.get('colour_fix', 'none'), device=self.device,
            precision=val_opt.get('precision', 'auto'), channels_last=val_opt.get('channels_last'),
            compile=val_opt.get('compile', False))
        get_root_logger().info(f'Sampling: {self.pipeline.describe_execution()}')

    @classmethod
    def check_run_options(cls, opt):
        """The model's options as it will read them, checked before BasicSR makes any folder (``run_checks``)."""
        check_options(complete_options(copy.deepcopy(opt)))

    def space_networks(self):
        """The networks of the diffusion's space besides the U-Net and the encoder ({section: module})."""
        return {section: getattr(self, 'net_' + network_label(section)) for section in self.space_entry.networks}

    @property
    def space_entry(self):
        return SPACES[diffusion_options(self.opt.get('diffusion'))['space']]

    def _build_space_networks(self):
        """The space's own networks (``network_vae`` ...) from ``path.pretrain_network_<x>`` (``param_key_<x>``,
        default params), frozen, saved with every checkpoint (the experiment folder alone samples)."""
        path_opt = self.opt['path']
        for section in self.space_entry.networks:
            name = network_label(section)
            net = build_network(self.opt[section]).to(self.device).eval().requires_grad_(False)
            load_weights(net, path_opt[f'pretrain_network_{name}'], path_opt.get(f'param_key_{name}', 'params'),
                         option=f'path.pretrain_network_{name}')
            setattr(self, f'net_{name}', net)
            get_root_logger().info(f'{section} (frozen) from {path_opt[f"pretrain_network_{name}"]}')

    def init_training_settings(self):
        self._build_encoder()  # before SRModel's set-up, which makes the optimizers
        self._build_space_networks()
        super().init_training_settings()
        train_opt = self.opt['train']
        self.train_precision, channels_last = resolve_execution(train_opt.get('precision', 'auto'),
                                                                train_opt.get('channels_last'), self.device)
        if self.opt['dist'] and train_opt.get('channels_last') is None:
            channels_last = False  # auto's: a 2-process run resumed after a kill was not bit-exact with it (CPU, gloo)
        self.grad_scaler = torch.amp.GradScaler('cuda') if self.train_precision == 'fp16' else None
        if channels_last:
            self.net_g.to(memory_format=torch.channels_last)
        self.train_channels_last = channels_last
        self.train_net = compiled(self.net_g) if train_opt.get('compile', False) else self.net_g
        get_root_logger().info(f'Training step: {self.train_precision}{", channels_last" if channels_last else ""}'
                               f'{", compiled" if self.train_net is not self.net_g else ""}')
        self.skipped_steps = 0
        self.grad_clip = train_opt.get('grad_clip')
        self.objective = OBJECTIVES[train_opt['objective']['type']]
        self.objective_state = self.objective.setup(self, train_opt['objective']) if self.objective.setup else None
        collapse = train_opt.get('collapse', {})
        self.collapse_guard = None if collapse is None else CollapseGuard(
            **{**COLLAPSE_DEFAULT, **collapse}, print_freq=(self.opt.get('logger') or {}).get('print_freq', 100))

    def setup_optimizers(self):
        super().setup_optimizers()
        self._setup_encoder_optimizer()

    def model_to_device(self, net):
        return distributed.model_to_device(self, net)

    # data ------------------------------------------------------------------------------------
    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BasicSR's loader, with an error that names the keys and shapes that do not fit."""
        load_weights(self.get_bare_model(net), load_path, param_key, strict, option=f'weights of {type(net).__name__}')

    def feed_data(self, data):
        data = self.degraded(data)
        self.lq = data['lq'].to(self.device)
        scale = self.opt['scale']
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
            if self.gt.shape[-2:] != (self.lq.shape[-2] * scale, self.lq.shape[-1] * scale):
                where = f' ({data["lq_path"][0]}, {data["gt_path"][0]})' if 'lq_path' in data else ''
                raise DatasetError(f'HR size {tuple(self.gt.shape[-2:])} is not scale {scale} x LR size '
                                   f'{tuple(self.lq.shape[-2:])}{where}')
        with torch.no_grad():  # the space's networks are frozen
            self.lr_up = self.pipeline.space.reference(self.lq)

    # training --------------------------------------------------------------------------------
    def optimize_parameters(self, current_iter):
        """One batch of ``train.objective`` (``models.objectives``; the paper's Algorithm 1 by default: x_t from the
        HR's x0 at a random t, ``train.pixel_opt`` between the network's output and its target); plus, when the
        encoder trains too, the auxiliary losses on its own SR output. The optimizers step after every batch, or
        after ``train.accumulate_grad_batches`` of them (``models.accumulation``)."""
        if self.starts_step(current_iter):
            for optimizer in self.optimizers:
                optimizer.zero_grad()
        features, losses = self._encode()
        objective_losses, trivial = self.objective.losses(self, self.objective_state, features)
        losses = {**objective_losses, **losses}
        loss = sum(losses.values())
        scaled = loss / self.accumulate
        (scaled if self.grad_scaler is None else self.grad_scaler.scale(scaled)).backward()
        clip_log = {}
        if self.ends_step(current_iter):
            clip_log = self._step(current_iter, loss)
            if clip_log is None:
                return
        trivial_log = {} if trivial is None else {'l_trivial': trivial}  # an all-zero output's, for the collapse guard
        self.log_dict = self.reduce_loss_dict({**losses, **clip_log, **trivial_log})
        trivial = self.log_dict.pop('l_trivial', None)
        if self.collapse_guard is not None and trivial is not None:  # the reduced losses: every rank decides alike
            self.collapse_guard(current_iter, sum(v for k, v in self.log_dict.items() if k.startswith('l_noise')),
                                trivial)
        if self.ema_decay > 0 and self.ends_step(current_iter):
            self.model_ema(decay=self.ema_decay)
            self._update_encoder_ema(self.ema_decay)

    def _step(self, current_iter, loss):
        """The optimizers' step on the gradients of the batches since the last one: the clipping log, or None for a
        step skipped on non-finite gradients (``step_guards``)."""
        if self.objective.bare_network:
            distributed.average_gradients(self.get_bare_model(self.net_g))
        if self.grad_scaler is None:
            if self._diverged(current_iter, loss):
                return None
            clip_log = self._clip_gradients()
            for optimizer in self.optimizers:
                optimizer.step()
            return clip_log
        # the scaler skips steps with non-finite gradients itself (fp16 overflows are expected)
        if self.grad_clip:
            for optimizer in self.optimizers:
                self.grad_scaler.unscale_(optimizer)
        clip_log = self._clip_gradients()
        for optimizer in self.optimizers:
            self.grad_scaler.step(optimizer)
        self.grad_scaler.update()
        return clip_log

    def training_condition(self, features):
        """The U-Net's condition of this batch (the space's ``condition.for_training``): from the encoder's
        ``features`` (with their gradient when the encoder trains), or through the encoder at every step."""
        return self.pipeline.condition_type.for_training(self.get_bare_model(self.net_g), self.net_encoder, features,
                                                         self.lr_up, self.opt['scale'])

    def extra_training_state(self):
        """fp16's gradient scale (else a resumed run starts it over), and the degradation's pool."""
        scaler = {'grad_scaler': self.grad_scaler.state_dict()} if getattr(self, 'grad_scaler', None) else {}
        return {**super().extra_training_state(), **scaler}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if getattr(self, 'grad_scaler', None) and 'grad_scaler' in resume_state:
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])

    def save(self, epoch, current_iter):
        names = ('net_g', 'net_g_ema', 'net_encoder', 'net_encoder_ema')
        # all of them before any file: no checkpoint of an iteration is written in part
        checkpoints.require_finite([(name, getattr(self, name)) for name in names if hasattr(self, name)], current_iter)
        for section, net in self.space_networks().items():  # frozen; the experiment folder alone samples
            self.save_network(net, 'net_' + network_label(section), current_iter)
        if hasattr(self, 'net_encoder_ema'):
            self.save_network([self.net_encoder, self.net_encoder_ema], 'net_encoder', current_iter,
                              param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_encoder, 'net_encoder', current_iter)
        super().save(epoch, current_iter)  # net_g (+ ema), then the training state
        self._write_manifest(current_iter)

    def _write_manifest(self, current_iter):
        """``experiments/<name>/model.yml``: the model as ``SRDiffPipeline.from_pretrained`` loads it, naming the
        checkpoint just written (EMA weights when kept) and the objective's sampler (a student's DDIM)."""
        if get_dist_info()[0] != 0:
            return
        label = 'latest' if current_iter == -1 else current_iter
        models = self.opt['path']['models']
        weights = {'network_g': (osp.join(models, f'net_g_{label}.pth'),
                                 'params_ema' if hasattr(self, 'net_g_ema') else 'params'),
                   'network_encoder': (osp.join(models, f'net_encoder_{label}.pth'),
                                       'params_ema' if hasattr(self, 'net_encoder_ema') else 'params'),
                   **{section: (osp.join(models, f'net_{network_label(section)}_{label}.pth'), 'params')
                      for section in self.space_entry.networks}}
        objective = getattr(self, 'objective', None)  # the training set-up's
        sampler = objective.sampler(self.opt['train']['objective']) if objective and objective.sampler else None
        folder = self.opt['path'].get('experiments_root', osp.dirname(models))
        write_manifest(folder, self.pipeline.model_options, weights, sampler)

