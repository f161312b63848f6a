"""The option sections that define an SRDiff (``scale``, ``network_g``, ``network_encoder``, ``diffusion``),
checked and completed before anything is built, errors naming the option; and the networks built from them.

Shared by the BasicSR model (options files) and the sampling pipeline (experiment folders, converted
checkpoints), so both read a model the same way.
"""
import inspect

import torch

from srdiff_basicsr.archs import ARCHS
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.schedule import SCHEDULES
from srdiff_basicsr.diffusion.space import SPACES
from srdiff_basicsr.errors import OptionsError, is_int, is_number, require

# and the schedule's own (SCHEDULES: timesteps and its options) and the space's (SPACES: e.g. res_rescale, clip_x0,
# lr_up for the pixel residual; scale_factor, fidelity, lr_up, posterior for a VAE latent)
DIFFUSION_DEFAULTS = dict(space='pixel_residual', schedule='cosine', parametrization='eps')


def diffusion_options(section):
    """The ``diffusion`` section with its defaults (and those of its space and schedule) filled in."""
    section = dict(section or {})
    if 'loss' in section:
        loss = {'l1': 'L1Loss', 'l2': 'MSELoss'}.get(section['loss'], 'L1Loss')
        raise OptionsError(f"diffusion.loss: the noise loss now comes from BasicSR's loss registry; remove "
                           f"diffusion.loss and write train.pixel_opt: {{type: {loss}, loss_weight: 1.0}} instead")
    space, schedule = (section.get(key, DIFFUSION_DEFAULTS[key]) for key in ('space', 'schedule'))
    if space not in SPACES:
        raise OptionsError(f'diffusion.space: must be one of {sorted(SPACES)}, got {space!r}')
    if schedule not in SCHEDULES:
        raise OptionsError(f'diffusion.schedule: must be one of {sorted(SCHEDULES)}, got {schedule!r}')
    entry, space_entry = SCHEDULES[schedule], SPACES[space]
    defaults = {**DIFFUSION_DEFAULTS, **space_entry.options, 'timesteps': entry.timesteps, **entry.options}
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise OptionsError(f'diffusion: unknown option(s) {unknown} for space {space} and schedule {schedule}; '
                           f'known: {sorted(defaults)}')
    options = {**defaults, **section}
    if options['parametrization'] not in PARAMETRIZATIONS:
        raise OptionsError(f'diffusion.parametrization: must be one of {sorted(PARAMETRIZATIONS)}, '
                           f'got {options["parametrization"]!r}')
    require(options['timesteps'], lambda v: is_int(v) and v >= 1, 'diffusion.timesteps', 'an integer >= 1')
    for key in entry.options:
        require(options[key], lambda v: is_number(v) and v > 0, f'diffusion.{key}', 'a number > 0')
    for key, (valid, must) in space_entry.checks.items():
        require(options[key], valid, f'diffusion.{key}', must)
    return options


def space_options(diffusion):
    """The keyword arguments of the space's builder in a completed ``diffusion`` section."""
    return {key: diffusion[key] for key in SPACES[diffusion['space']].options}


def schedule_options(diffusion):
    """The keyword arguments of ``DiscreteSchedule.from_options`` in a completed ``diffusion`` section."""
    own = SCHEDULES[diffusion['schedule']].options
    return {'schedule': diffusion['schedule'], 'timesteps': diffusion['timesteps'],
            **{key: diffusion[key] for key in own}}


def complete_network_options(opt):
    """Check the network sections of ``opt`` (in place): ``network_g``, ``network_encoder`` and those of
    ``diffusion.space`` (``SPACES[...].networks``): registered types, known options; then the family's own checks
    and fill-ins (``NETWORK_COMPLETIONS``)."""
    diffusion = diffusion_options(opt.get('diffusion'))
    sections = ('network_g', 'network_encoder', *SPACES[diffusion['space']].networks)
    for section in sections:
        if section not in opt:
            raise OptionsError(f'{section}: missing (diffusion.space {diffusion["space"]} needs {", ".join(sections)})')
        check_arch_options(section, opt[section])
    NETWORK_COMPLETIONS[diffusion['space']](opt, diffusion)
    return opt


def _complete_pixel_networks(opt, diffusion):
    """SRDiff's family: the U-Net's output channels for ``diffusion.parametrization``; both networks' ``scale``
    and the U-Net's encoder sizes filled in from the rest when not given."""
    scale = opt.get('scale')
    unet, encoder = opt['network_g'], opt['network_encoder']
    unet.setdefault('scale', scale)  # the top-level scale, unless given again
    encoder.setdefault('scale', scale)
    for section, value in (('network_g.scale', unet['scale']), ('network_encoder.scale', encoder['scale'])):
        if value != scale:
            raise OptionsError(f'{section} is {value} but scale is {scale}: they must be equal')
    parametrization = diffusion['parametrization']
    needed = 3 * len(PARAMETRIZATIONS[parametrization].heads)
    num_out_ch = unet.get('num_out_ch', _default(unet['type'], 'num_out_ch'))
    if num_out_ch != needed:
        raise OptionsError(f'network_g.num_out_ch is {num_out_ch}, but diffusion.parametrization '
                           f'{parametrization} needs {needed} (3 per predicted image)')
    for unet_key, encoder_key in (('encoder_num_feat', 'num_feat'), ('encoder_num_block', 'num_block')):
        if encoder_key in encoder:
            unet.setdefault(unet_key, encoder[encoder_key])
        if unet.get(unet_key) != encoder.get(encoder_key):
            raise OptionsError(f'network_g.{unet_key} ({unet.get(unet_key)}) must equal '
                               f'network_encoder.{encoder_key} ({encoder.get(encoder_key)})')
    try:  # again with the sizes taken from the encoder
        meta_network(unet)
    except OptionsError as error:
        raise OptionsError(f'network_g (its encoder sizes those of network_encoder): {error}') from None


def _complete_latent_networks(opt, diffusion):
    """StableSR's family: the latent's channels agree across the VAE, the U-Net (input; output: one set per head)
    and the time-aware encoder (input), whose output channels are the SPADEs' condition channels."""
    require(opt.get('scale'), lambda v: is_int(v) and v >= 1, 'scale', 'an integer >= 1')
    value = {section: {**{k: _default(opt[section]['type'], k) for k in keys}, **opt[section]}
             for section, keys in (('network_g', ('in_channels', 'out_channels', 'semb_channels')),
                                   ('network_encoder', ('in_channels', 'out_channels')),
                                   ('network_vae', ('embed_dim', )))}
    latent = value['network_vae']['embed_dim']
    heads = len(PARAMETRIZATIONS[diffusion['parametrization']].heads)
    for section, key, needed in (('network_g', 'in_channels', latent), ('network_encoder', 'in_channels', latent),
                                 ('network_g', 'out_channels', latent * heads),
                                 ('network_g', 'semb_channels', value['network_encoder']['out_channels'])):
        if value[section][key] != needed:
            raise OptionsError(f'{section}.{key} is {value[section][key]}, but it must be {needed} (the latent has '
                               f'{latent} channels (network_vae.embed_dim), the time-aware encoder gives '
                               f'{value["network_encoder"]["out_channels"]}, diffusion.parametrization '
                               f'{diffusion["parametrization"]} has {heads} head(s))')


# ``diffusion.space`` -> the checks and fill-ins of its family's network sections
NETWORK_COMPLETIONS = {'pixel_residual': _complete_pixel_networks, 'vae_latent': _complete_latent_networks}


def meta_network(arch_opt):
    """The network of an ``network_*`` section of ours on the meta device (no memory): its constructor's checks
    as an OptionsError, and its attributes (``divisor``, ``window_grid``) for other checks."""
    cls = ARCHS[arch_opt['type']]
    try:
        with torch.device('meta'):
            return cls(**{key: value for key, value in arch_opt.items() if key != 'type'})
    except ValueError as error:
        raise OptionsError(str(error)) from None


def _default(arch_type, option):
    """The default of a constructor argument of one of our archs (None when it has none)."""
    parameter = inspect.signature(ARCHS[arch_type].__init__).parameters.get(option)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def check_arch_options(section, arch_opt, registry=ARCHS):
    """A ``network_*`` section: a type of ``registry`` (ours; the adapter passes BasicSR's ARCH_REGISTRY, which
    holds them too), options its constructor takes; for our archs, sizes >= 1, switches true or false, and
    whatever else their constructors check."""
    arch_type = arch_opt.get('type')
    if arch_type not in registry:
        raise OptionsError(f'{section}.type: no network named {arch_type!r} is registered' if registry is not ARCHS
                           else f'{section}.type: {arch_type!r} is not a network of srdiff_basicsr; known: {sorted(ARCHS)}')
    cls = registry.get(arch_type)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(arch_opt) - {'type'} - set(params))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        known = [p for p in params if p != 'self']
        raise OptionsError(f'{section}: unknown option(s) {unknown} for {arch_type}; known: {known}')
    if cls.__module__.startswith('srdiff_basicsr.'):  # our archs: every integer option is a size or count
        for key, value in arch_opt.items():
            default = params[key].default if key in params else None
            if isinstance(default, bool):
                require(value, lambda v: isinstance(v, bool), f'{section}.{key}', 'true or false')
            elif is_int(default):
                require(value, lambda v: is_int(v) and v >= 1, f'{section}.{key}', 'an integer >= 1')
            elif isinstance(default, (list, tuple)) and not key.endswith(('_levels', '_blocks')):  # sizes: dim_mults
                require(value, lambda v: isinstance(v, (list, tuple)) and v and all(is_int(m) and m >= 1 for m in v),
                        f'{section}.{key}', 'a non-empty list of integers >= 1')
            elif isinstance(default, (list, tuple)):  # indices: window_attn_levels, feature_blocks
                require(value, lambda v: isinstance(v, (list, tuple)) and all(is_int(m) and m >= 0 for m in v),
                        f'{section}.{key}', 'a list of integers >= 0')
        try:  # the constructor's own checks (sizes that do not fit together), on the meta device: no memory used
            meta_network(arch_opt)
        except OptionsError as error:
            raise OptionsError(f'{section}: {error}') from None


def build_arch(arch_opt):
    """The network of a checked ``network_*`` section of ours."""
    arch_opt = dict(arch_opt)
    return ARCHS[arch_opt.pop('type')](**arch_opt)
