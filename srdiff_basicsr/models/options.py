"""SRDiffModel's own option sections, checked before anything is built, errors naming the option."""
import inspect

from basicsr.utils.registry import ARCH_REGISTRY

from srdiff_basicsr.diffusion.samplers import SAMPLER_DEFAULTS

DIFFUSION_DEFAULTS = dict(schedule='cosine', timesteps=100, cosine_s=0.008, res_rescale=2.0, clip_x0=True, loss='l1')


class OptionsError(ValueError):
    """An option that is missing, unknown or inconsistent, named by its path in the options file."""


def check_options(opt):
    """Fail early, naming the option, instead of deep inside torch. Fills network_g's and
    network_encoder's scale (and the U-Net's encoder sizes) from the rest when not given."""
    if opt.get('path', {}).get('pretrain_network_encoder') is None:
        raise OptionsError('path.pretrain_network_encoder is not set: SRDiff needs a pretrained LR encoder '
                           '(train one with options/train_rrdb_*.yml, then point this at its models/net_g_*.pth)')
    unknown = set(opt.get('diffusion') or {}) - set(DIFFUSION_DEFAULTS)
    if unknown:
        raise OptionsError(f'diffusion: unknown option(s) {sorted(unknown)}; known: {sorted(DIFFUSION_DEFAULTS)}')
    loss = (opt.get('diffusion') or {}).get('loss', 'l1')
    if loss not in ('l1', 'l2'):
        raise OptionsError(f"diffusion.loss: must be 'l1' or 'l2', got {loss!r}")
    for section in ('network_g', 'network_encoder'):
        if section not in opt:
            raise OptionsError(f'{section}: missing (SRDiffModel needs network_g and network_encoder)')
        _check_arch_options(section, opt[section])
    scale = opt.get('scale')
    unet, encoder = opt['network_g'], opt['network_encoder']
    unet.setdefault('scale', scale)  # the top-level scale, unless given again
    encoder.setdefault('scale', scale)
    for section, value in (('network_g.scale', unet['scale']), ('network_encoder.scale', encoder['scale'])):
        if value != scale:
            raise OptionsError(f'{section} is {value} but scale is {scale}: they must be equal')
    for unet_key, encoder_key in (('encoder_num_feat', 'num_feat'), ('encoder_num_block', 'num_block')):
        if encoder_key in encoder:
            unet.setdefault(unet_key, encoder[encoder_key])
        if unet.get(unet_key) != encoder.get(encoder_key):
            raise OptionsError(f'network_g.{unet_key} ({unet.get(unet_key)}) must equal '
                               f'network_encoder.{encoder_key} ({encoder.get(encoder_key)})')


def _check_arch_options(section, arch_opt):
    arch_type = arch_opt.get('type')
    try:
        cls = ARCH_REGISTRY.get(arch_type)
    except KeyError:
        raise OptionsError(f'{section}.type: no network named {arch_type!r} is registered') from None
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(arch_opt) - {'type'} - set(params))
    if unknown:
        known = [p for p in params if p != 'self']
        raise OptionsError(f'{section}: unknown option(s) {unknown} for {arch_type}; known: {known}')


def check_sampler_options(sampler_opt, num_timesteps, where='val.sampler'):
    """The sampler options with defaults filled in; an error naming the option otherwise."""
    sampler_opt = dict(sampler_opt or {})
    kind = sampler_opt.pop('type', 'ddpm')
    if kind not in SAMPLER_DEFAULTS:
        raise OptionsError(f'{where}.type: unknown sampler {kind!r}; known: {sorted(SAMPLER_DEFAULTS)}')
    unknown = sorted(set(sampler_opt) - set(SAMPLER_DEFAULTS[kind]))
    if unknown:
        raise OptionsError(f'{where}: unknown option(s) {unknown} for {kind}; known: {sorted(SAMPLER_DEFAULTS[kind])}')
    options = {**SAMPLER_DEFAULTS[kind], **sampler_opt}
    steps = options.get('steps')
    if steps is not None and (not isinstance(steps, int) or not 1 <= steps <= num_timesteps):
        raise OptionsError(f'{where}.steps: must be an integer from 1 to {num_timesteps}, got {steps!r}')
    if options.get('eta', 0) < 0:
        raise OptionsError(f"{where}.eta: must be >= 0, got {options['eta']}")
    for key in ('rtol', 'atol'):
        if key in options and not options[key] > 0:
            raise OptionsError(f'{where}.{key}: must be > 0, got {options[key]}')
    return {'type': kind, **options}


def describe_sampler(sampler_opt, num_timesteps):
    kind = sampler_opt['type']
    if kind == 'ddpm':
        return f'DDPM, {num_timesteps} steps'
    if kind == 'ddim':
        return f"DDIM, {sampler_opt['steps']} steps, eta {sampler_opt['eta']}"
    if kind == 'dpmpp_2m':
        return f"DPM-Solver++(2M), {sampler_opt['steps']} steps"
    return f"probability-flow ODE, {sampler_opt['method']}, rtol {sampler_opt['rtol']}, atol {sampler_opt['atol']}"
