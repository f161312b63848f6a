"""The sampling engine: an LR batch in, SR samples out, with plain networks and no BasicSR model.

    from srdiff_basicsr.pipeline import SRDiffPipeline
    pipe = SRDiffPipeline.from_pretrained('experiments/demo_srdiff_x4')    # or a converted checkpoint
    sr = pipe(lr, seed=0, sampler='ddim', steps=20)                        # lr: (N, 3, h, w) in [0, 1]

Data path (images in [0, 1], the diffusion in [-1, 1] like the official code): the space's reference of the LR
(SRDiff: lr_up = MATLAB bicubic(lr), ``diffusion.space``); the condition (SRDiff: the encoder's features
projected once per image, ``diffusion.condition``); x_T ~ N(0, I) -> sampler(denoiser, schedule, x_T, plan,
noise) -> x0 (SRDiff: the rescaled residual); sr = the space's decoding of x0 (lr_up + x0 / res_rescale).
(The official data loader divided by 256 instead of 255 before making lr_up; here lr_up is the plain bicubic
of the LR image.)
"""
import copy
import math
import os
from os import path as osp

import torch
from torch.nn import functional as F

from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.archs.image_statistics import needs_image_statistics
from srdiff_basicsr.diffusion.condition import ProjectedCondition, conditioned_network, timed_network
from srdiff_basicsr.diffusion.noise import noise_source, randn
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS, Denoiser
from srdiff_basicsr.diffusion.samplers import describe_sampler, run_sampler, sampler_options
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.diffusion.space import PixelResidualSpace
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.diffusion.tiling import TiledNetwork, tile_options
from srdiff_basicsr.errors import OptionsError, WeightsError
from srdiff_basicsr.execution import autocast, check_precision, compiled, resolve_execution
from srdiff_basicsr.loading.model_files import model_manifest, network_files
from srdiff_basicsr.loading.model_folder import Manifest, write_manifest
from srdiff_basicsr.loading.weights import load_weights, write_state_dict
from srdiff_basicsr.network_options import (complete_network_options, diffusion_options, network_label,
                                            schedule_options, space_options)
from srdiff_basicsr.ops.colour import COLOUR_FIXES, colour_fix

def check_colour_fix(colour_fix, where):
    if colour_fix not in COLOUR_FIXES:
        raise OptionsError(f'{where}.colour_fix: must be one of {COLOUR_FIXES}, got {colour_fix!r}')


def check_device(name, where):
    """``name`` as this machine has it: cpu, cuda or cuda:N with N below the number of GPUs; errors name ``where``
    (``--device``, ``val.device``)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OptionsError(f'{where} {name}: not a device name (cpu, cuda or cuda:N)') from None
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OptionsError(f'{where} {name}: this machine has no CUDA GPU; use cpu')
        if device.index is not None and device.index >= count:
            raise OptionsError(f'{where} {name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}')
    elif device.type != 'cpu':
        raise OptionsError(f'{where} {name}: only cpu, cuda and cuda:N are supported')
    return device


def check_lr(lr):
    """An LR batch the pipeline can super-resolve: (N, 3, h, w), finite, in [0, 1] (not 0..255)."""
    if not torch.is_tensor(lr) or lr.dim() != 4 or lr.shape[1] != 3 or not lr.is_floating_point():
        raise ValueError(f'lr: expected a float (N, 3, h, w) tensor in [0, 1], got '
                         f'{tuple(lr.shape) if torch.is_tensor(lr) else type(lr).__name__}')
    if not torch.isfinite(lr).all():
        raise ValueError(f'lr: {int((~torch.isfinite(lr)).sum())} values are NaN or infinite')
    low, high = lr.min().item(), lr.max().item()
    if low < -1e-3 or high > 1 + 1e-3:
        hint = ' (8-bit values? divide by 255)' if high > 2 else ''
        raise ValueError(f'lr: values must be in [0, 1], got {low:.4g} to {high:.4g}{hint}')


class SRDiffPipeline:
    """SRDiff sampling from plain ``nn.Module``s: the LR ``encoder`` (``features(lr)``), the noise
    predictor ``unet`` (``project_condition(features, lr_up)``, ``forward(x_t, t, cond)``, ``divisor``) and a
    schedule.

    Args:
        encoder, unet (nn.Module): the networks (used in eval mode, never trained here).
        schedule (DiscreteSchedule): the diffusion's schedule.
        scale (int): HR / LR size ratio.
        res_rescale (float): the residual is multiplied by this before diffusion (default 2, SRDiff's).
        clip_x0 (bool): clamp the residual x0 to [-1, 1]: in training, and the predicted one at every step
            (default: SRDiff does; ECDP, whose residual goes beyond, does not).
        lr_up (str): the upsampling the residual is over (``ops.resize.UPSAMPLERS``: matlab, SRDiff's and the
            default; bicubic_antialias, ECDP's torchvision resize).
            These three make the default space; with ``space`` they are an error (they are the space's).
        parametrization (str): what ``unet`` predicts (see ``diffusion.parametrization``).
        sampler (dict | None): default sampler options (``{'type': 'ddim', 'steps': 20}``; default the
            paper's 100-step DDPM); ``tile``, ``colour_fix``: see ``set_sampling``.
        device, precision, channels_last, compile: see ``set_execution``.
        space, condition: the space the diffusion runs in (``diffusion.space``; default the pixel residual of
            ``res_rescale``, ``clip_x0`` and ``lr_up``) and the class of its condition (``diffusion.condition``,
            ``of_lr(encoder, unet, lr, reference, scale)``; default ``ProjectedCondition``).
    """

    def __init__(self, encoder, unet, schedule, scale, res_rescale=None, clip_x0=None, parametrization='eps',
                 sampler=None, tile=None, colour_fix='none', device=None, precision='auto', channels_last=None,
                 compile=False, lr_up=None, space=None, condition=ProjectedCondition):
        if parametrization not in PARAMETRIZATIONS:
            raise OptionsError(f'parametrization: must be one of {sorted(PARAMETRIZATIONS)}, got {parametrization!r}')
        pixel_options = {'res_rescale': res_rescale, 'clip_x0': clip_x0, 'lr_up': lr_up}
        if space is not None and any(value is not None for value in pixel_options.values()):
            given = sorted(key for key, value in pixel_options.items() if value is not None)
            raise OptionsError(f'SRDiffPipeline: {given} given beside space=; they are options of the pixel residual '
                               f'space, give them to {type(space).__name__} instead')
        self.encoder, self.unet, self.schedule, self.scale = encoder, unet, schedule, scale
        self.space = space or PixelResidualSpace(scale, **{k: v for k, v in pixel_options.items() if v is not None})
        self.condition_type = condition
        self.networks = {'network_g': unet, 'network_encoder': encoder}  # by section; the space's: from_networks
        self.network_options = None  # the network_* sections they were built from, when known (from_networks)
        self.diffusion = None  # the completed ``diffusion`` section, when built from one (from_networks)
        self.parametrization = parametrization
        self.nfe = 0  # network evaluations of the last call
        self.set_execution(device or next(unet.parameters()).device, precision, channels_last, compile)
        self.set_sampling(sampler, tile, colour_fix)

    @property
    def clip_x0(self):
        """Whether the predicted x0 is clamped to [-1, 1] at every step: the space's choice."""
        return self.space.clip_x0

    @classmethod
    def from_networks(cls, encoder, unet, scale, diffusion=None, networks=None, options=None, **kwargs):
        """Built from networks and a ``diffusion`` options section (space, schedule, parametrization and their
        options; defaults filled in); ``networks``: the space's own ({section: module}, e.g. ``network_vae``);
        ``options``: the ``network_*`` sections the networks were built from (``save_pretrained`` writes them).
        ``kwargs``: as ``__init__``."""
        diffusion = diffusion_options(diffusion)
        entry = SPACES[diffusion['space']]
        space = entry.build(scale, networks or {}, **space_options(diffusion))
        pipe = cls(encoder, unet, DiscreteSchedule.from_options(**schedule_options(diffusion)), scale,
                   parametrization=diffusion['parametrization'], space=space, condition=entry.condition, **kwargs)
        pipe.networks = {'network_g': unet, 'network_encoder': encoder, **(networks or {})}
        pipe.diffusion = diffusion
        pipe.network_options = None if options is None else {
            section: dict(options[section]) for section in pipe.networks}
        return pipe

    @classmethod
    def from_manifest(cls, manifest, device='cpu', **kwargs):
        """Built from a ``model_folder.Manifest``: each network of its sections loaded from its file and key; its
        sampler the default unless ``sampler`` is given. ``kwargs``: as ``__init__``."""
        opt = manifest.options
        diffusion = diffusion_options(opt.get('diffusion'))  # checked before any network is built
        sections = ('network_g', 'network_encoder', *SPACES[diffusion['space']].networks)
        missing = [section for section in sections if section not in manifest.weights]
        if missing:
            raise WeightsError(f'{manifest.source}: no weights for {", ".join(missing)}: not a model that samples '
                               f'(diffusion.space {diffusion["space"]} runs {", ".join(sections)})')
        networks = complete_network_options({key: opt.get(key) for key in ('scale', 'diffusion', *sections)})
        built = {}
        for section in sections:
            built[section] = build_arch(networks[section])
            file, param_key = manifest.weights[section]
            load_weights(built[section], file, param_key, option=f'{section} weights')
        if kwargs.get('sampler') is None:
            kwargs['sampler'] = manifest.sampler
        unet, encoder = built.pop('network_g'), built.pop('network_encoder')
        return cls.from_networks(encoder, unet, networks['scale'], diffusion, networks=built, options=networks,
                                 device=device, **kwargs)

    @classmethod
    def from_options(cls, opt, unet_weights, encoder_weights, device='cpu', param_key='params_ema',
                     network_weights=None, **kwargs):
        """Built from an options dict (``scale``, ``network_g``, ``network_encoder``, ``diffusion`` and the space's
        network sections) and weight files (``.pth``: ``param_key`` of each, else ``params``; or ``.safetensors``);
        ``network_weights``: {section: file} of the space's networks (default: ``net_<name>_<suffix>`` beside the
        U-Net's ``net_g_<suffix>``). ``kwargs``: as ``__init__``."""
        sections = SPACES[diffusion_options(opt.get('diffusion'))['space']].networks
        files = {'network_g': unet_weights, 'network_encoder': encoder_weights,
                 **network_files(unet_weights, sections, network_weights)}
        return cls.from_manifest(Manifest(opt, {section: (file, param_key) for section, file in files.items()}),
                                 device, **kwargs)

    @classmethod
    def from_pretrained(cls, model, encoder=None, options=None, device='cpu', **kwargs):
        """From a model folder (its ``model.yml``: ``save_pretrained``'s, a converter's, a training run's, which
        names its latest checkpoint) or, for older folders, an experiment folder (its latest weights, EMA when
        saved), a converted checkpoint folder, or a ``net_g_*`` weight file (``encoder``: its encoder's weights,
        default beside it; ``options``: a file with the network sections, default found with it). A model samples
        with its own sampler (a distilled student's DDIM, a converted StableSR's 200 respaced steps) unless
        ``sampler`` says."""
        return cls.from_manifest(model_manifest(model, encoder, options), device, **kwargs)

    @property
    def model_options(self):
        """The sections that define the model (scale, network_*, diffusion), as a manifest holds them; None for a
        pipeline of plain networks."""
        if self.network_options is None:
            return None
        return {'scale': self.scale, **self.network_options, 'diffusion': self.diffusion}

    def save_pretrained(self, folder):
        """``folder/model.yml`` and one weight file per network (``net_g.pth``, ``net_encoder.pth``, the space's
        ``net_<x>.pth``: BasicSR's ``{'params': state_dict}``), this pipeline's sampler the model's own; the folder
        then loads with ``from_pretrained``. Returns the manifest's path."""
        if self.model_options is None:
            raise OptionsError('save_pretrained: this pipeline was built from plain networks, so their options are '
                               'unknown; build it with from_networks(..., options=<the network_* sections>)')
        os.makedirs(folder, exist_ok=True)
        weights = {}
        for section, net in self.networks.items():
            file = osp.join(folder, f'net_{network_label(section)}.pth')
            write_state_dict(net.state_dict(), file)
            weights[section] = (file, 'params')
        return write_manifest(folder, self.model_options, weights, self.sampler_opt)

    # options ---------------------------------------------------------------------------------------
    def at_output_size(self):
        """This pipeline (its networks shared) for images already at the output size: scale 1, no upsampling (a
        latent space only; StableSR's scripts upsample the LR themselves, ``inference.stablesr_recipes``)."""
        if not hasattr(self.space, 'at_output_size'):
            raise OptionsError(f'{type(self.space).__name__}: a pixel model samples from its LR, not from an image at '
                               'the output size')
        view = copy.copy(self)
        view.scale, view.space = 1, self.space.at_output_size()
        return view

    def set_space_options(self, names=None, **options):
        """Change options of the diffusion's space (its ``SPACES`` entry's: e.g. a VAE latent's ``fidelity``,
        ``vae_tile``), checked as the options file's are; the space is rebuilt on the same networks. ``names``:
        {option: how errors call it} (default ``diffusion.<option>``)."""
        names = names or {}
        if self.diffusion is None:
            raise OptionsError(f'{", ".join(names.get(k, k) for k in options)}: this pipeline was built from a space '
                               'object, not from a diffusion section; set the option on pipe.space')
        entry = SPACES[self.diffusion['space']]
        for key, value in options.items():
            where = names.get(key, f'diffusion.{key}')
            if key not in entry.options:
                raise OptionsError(f'{where}: diffusion.space {self.diffusion["space"]} has no option {key} (its '
                                   f'options: {", ".join(sorted(entry.options)) or "none"})')
            must = entry.options[key].check(value)
            if must:
                raise OptionsError(f'{where}: must be {must}, got {value!r}')
        self.diffusion = {**self.diffusion, **options}
        space_networks = {section: net for section, net in self.networks.items() if section in entry.networks}
        self.space = entry.build(self.scale, space_networks, **space_options(self.diffusion))

    def set_sampling(self, sampler=None, tile=None, colour_fix='none', where='val'):
        """The defaults of every call: ``sampler`` options (``type`` from the sampler table and its own
        options), ``tile`` ({size, overlap, batch, weights} in HR pixels, weights by default the space's, or None for
        the whole image at once) and
        ``colour_fix`` (none | adain | wavelet); errors name ``where.<option>``."""
        self.sampler_opt = sampler_options(sampler, self.schedule.num_timesteps, f'{where}.sampler')
        tile = tile if not isinstance(tile, dict) else {'weights': self.space.tile_weights, **tile}
        self.tile_opt = tile_options(tile, self.space.canvas_grid, self.unet.divisor, f'{where}.tile',
                                     getattr(self.unet, 'window_grid', 1), self.space.factor)
        check_colour_fix(colour_fix, where)
        self.colour_fix = colour_fix

    def set_execution(self, device=None, precision='auto', channels_last=None, compile=False, where='val'):
        """Where and how the networks run: ``device`` (e.g. ``cuda:1``; the networks and schedule move there),
        autocast ``precision`` (auto | fp32 | bf16 | fp16, fp16 on CUDA only; the sampler's state stays float32;
        auto: bf16 where the device computes it natively, else fp32, see ``execution``), ``channels_last``
        memory format (None: with auto's bf16) and ``compile`` (torch.compile of the U-Net, once; its kernels
        cached across runs). ``self.precision``, ``self.channels_last``: what was picked."""
        device = torch.device(device or self.device)
        if device.type == 'cuda':  # other types (mps, meta, ...) are the caller's to know
            check_device(device, f'{where}.device')
        check_precision(precision, device, where)
        previous = getattr(self, 'device', None)
        modules = (self.encoder, self.unet, self.schedule, *self.space.networks)
        try:
            for module in modules:
                module.to(device)
        except (RuntimeError, AssertionError):  # the networks stay usable where they were
            for module in modules:
                module.to(previous or 'cpu')
            raise
        self.device = device
        self.precision, self.channels_last = resolve_execution(precision, channels_last, device)
        if self.channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self._run_unet = compiled(self.unet) if compile else self.unet

    def describe(self):
        """E.g. 'DDIM, 20 steps, eta 0.0' for the default sampler."""
        return describe_sampler(self.sampler_opt, self.schedule.num_timesteps)

    def describe_execution(self):
        """E.g. 'bf16 autocast, channels_last, on cpu'."""
        precision = 'fp32' if self.precision == 'fp32' else f'{self.precision} autocast'
        layout = ', channels_last' if self.channels_last else ''
        compiled_unet = ', compiled' if self._run_unet is not self.unet else ''
        return f'{precision}{layout}{compiled_unet}, on {self.device}'

    # the data path ---------------------------------------------------------------------------------
    def condition(self, lr, reference):
        """The condition of an LR batch (``diffusion.condition``), its space's ``reference`` given."""
        return self.condition_type.of_lr(self.encoder, self.unet, lr, reference, self.scale)

    def network(self, condition, canvas, tile=None):
        """(x_t, t) -> the U-Net's output in x_t's dtype under ``condition``: on the whole canvas (height, width),
        or fused from ``tile`` {size, overlap, batch} tiles."""
        net = timed_network(self._run_unet, self.schedule, self.channels_last)
        if tile is None:
            whole = conditioned_network(net, condition)
            return lambda x_t, t: whole(x_t, t).to(x_t.dtype)
        unit = self.space.factor  # tile options are in HR pixels, the canvas in the space's
        tiled = TiledNetwork(net, condition, *canvas, self.space.canvas_grid, tile['size'] // unit,
                             tile['overlap'] // unit, self.unet.divisor, tile['batch'],
                             getattr(self.unet, 'window_grid', 1), needs_image_statistics(self.unet), tile['weights'],
                             self.space.tiles_keep_phase)
        return lambda x_t, t: tiled(x_t, t).to(x_t.dtype)

    def _pad(self, lr):
        """The U-Net halves the HR size len(dim_mults) - 1 times: pad the LR so the HR divides, and so that
        its coarsest level keeps the 2 pixels its reflection padding needs (tiny images). Tiles that need not keep
        the U-Net's phase (StableSR's canvas) cover any canvas of whole latent pixels at least a tile large."""
        divisor = self.unet.divisor * self.space.factor  # in HR pixels
        if self.tile_opt is not None and not self.space.tiles_keep_phase and min(
                lr.shape[-2:]) * self.scale >= self.tile_opt['size']:
            divisor = self.space.factor
        multiple = divisor // math.gcd(divisor, self.scale)
        min_lr = -(-2 * divisor // self.scale)
        return tuple(max(n, min_lr) + (-max(n, min_lr)) % multiple - n for n in lr.shape[-2:])

    @torch.no_grad()
    def __call__(self, lr, seed=None, generator=None, sampler=None, start=None, on_step=None, clamp=True,
                 **sampler_opt):
        """SR samples in [0, 1] of an LR batch (N, 3, h, w) in [0, 1] of any size.

        Args:
            seed (int | None): seeds a generator on the pipeline's device (ignored when ``generator`` is given).
            generator (torch.Generator | list | Replay | None): source of every noise draw (in order: the space's,
                e.g. StableSR's posterior sample, x_T, the sampler's); ``noise.Replay``: recorded draws; a list of
                (generator, rows)
                gives each group of rows its own (an image's samples then do not depend on its batch).
            sampler (str | dict | None), **sampler_opt: this call's sampler and its options (e.g.
                ``sampler='ddim', steps=20``); default: ``set_sampling``'s.
            start ((Tensor, int) | 'lr' | None): (x_t, t) continues from the residual latent x_t at step t instead of
                pure noise at T-1 (the paper's manipulations); ``'lr'``: x_T is the LR's own x0 in the space (StableSR:
                its latent; a pixel residual: 0) noised to T-1 (StableSR's tiled script and CFW data generation).
            on_step (callable | None): called with the evaluation count before each network evaluation.
            clamp (bool): the SR clamped to [0, 1]; false keeps the decode's (colour-fixed) range, for callers that
                blend several samples before they clamp (StableSR's image tiles).
        The number of network evaluations is left in ``self.nfe``.
        """
        x0, reference, crop = self.sample_space(lr, seed, generator, sampler, start, on_step, **sampler_opt)
        sr = self.space.decode(x0, reference, clamp=clamp and self.colour_fix == 'none')[crop]
        return colour_fix(sr, self.space.colour_reference(reference)[crop], self.colour_fix, clamp)

    @torch.no_grad()
    def sample_space(self, lr, seed=None, generator=None, sampler=None, start=None, on_step=None, **sampler_opt):
        """The sampler's x0 in the diffusion's space before decoding (StableSR: the scaled latent), on the padded
        LR; with the space's reference of it and the crop of the output image to the LR's size. Arguments as
        ``__call__``'s."""
        sampler_opt = self._sampler_for_call(sampler, sampler_opt)
        check_lr(lr)
        if generator is None and seed is not None:
            generator = torch.Generator(self.device).manual_seed(seed)
        lr = lr.to(self.device)
        h, w = lr.shape[-2:]
        pad_h, pad_w = self._pad(lr)
        if pad_h or pad_w:
            lr = F.pad(lr, (0, pad_w, 0, pad_h), mode='replicate')
        networks = (self.unet, self.encoder, *self.space.networks)
        was_training = [net.training for net in networks]
        for net in networks:
            net.eval()
        reference = self.space.reference(lr, lambda shape: randn(shape, generator, lr.device, lr.dtype))
        with autocast(self.device, self.precision):
            x_shape = self.space.shape(reference)
            network = self.network(self.condition(lr, reference), x_shape[-2:], self.tile_opt)
            self.nfe = 0

            def counted(x_t, t):
                self.nfe += 1
                if on_step is not None:
                    on_step(self.nfe)
                return network(x_t, t)

            denoiser = Denoiser(counted, self.schedule, self.parametrization, self.clip_x0)
            if start is None:
                x_T, t_start = randn(x_shape, generator, lr.device, lr.dtype), None
            elif start == 'lr':  # StableSR's tiled script and CFW data: the LR's own x0 noised to the last step
                last = torch.full((x_shape[0], ), self.schedule.num_timesteps - 1, device=lr.device)
                x_T = self.schedule.q_sample(self.space.lr_x0(reference), last,
                                             randn(x_shape, generator, lr.device, lr.dtype))
                t_start = None
            else:
                x_T, t_start = start
                pad = (0, pad_w * self.scale // self.space.factor, 0, pad_h * self.scale // self.space.factor)
                x_T = F.pad(x_T.to(self.device), pad, mode='replicate')
            x0 = run_sampler(sampler_opt, denoiser, self.schedule, x_T, noise_source(generator), t_start)
        for net, mode in zip(networks, was_training):
            net.train(mode)
        return x0, reference, (..., slice(0, h * self.scale), slice(0, w * self.scale))

    def _sampler_for_call(self, sampler, options):
        if sampler is None and not options:
            return self.sampler_opt
        if isinstance(sampler, dict):
            sampler = dict(sampler)
        else:
            sampler = {'type': sampler or self.sampler_opt['type']}
        return sampler_options({**sampler, **options}, self.schedule.num_timesteps, 'sampler')
