"""SRDiffModel's own option sections, checked before anything is built, errors naming the option."""
import inspect

from basicsr.utils.registry import ARCH_REGISTRY

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
