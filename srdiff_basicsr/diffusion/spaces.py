"""The table of spaces (``diffusion.space``): for each, its class and every choice that depends on it: its own
options and their checks, its condition, the checks and fill-ins of its network sections, its default loss, the
weights it cannot start without, the training objectives it refuses and the networks it runs besides the U-Net and
the encoder. A new family's space is one class (``diffusion.space``) and one entry here."""
from dataclasses import dataclass, field
from typing import Callable

from srdiff_basicsr.archs.arch_options import arch_default, meta_network
from srdiff_basicsr.diffusion.condition import ProjectedCondition, TimeAwareCondition
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.space import VAE_FACTOR, PixelResidualSpace, VAELatentSpace, valid_vae_tile
from srdiff_basicsr.errors import OptionsError, is_int, is_number, require
from srdiff_basicsr.option_spec import Option, must_be, positive
from srdiff_basicsr.ops.resize import UPSAMPLERS


@dataclass(frozen=True)
class SpaceEntry:
    """Every choice that depends on the space, so that a new space is one class and one entry."""
    build: Callable  # (scale, networks {section: module}, **options) -> a space
    options: dict  # its own ``diffusion`` options: {name: Option}
    condition: type  # the condition class of the family (``diffusion.condition``)
    complete_networks: Callable  # (opt, completed diffusion) -> None: checks and fills in the network sections
    loss: dict  # the default noise loss (``train.pixel_opt``), BasicSR loss options
    required_weights: dict  # ``path.pretrain_network_<x>`` -> why the model cannot start without it
    refuses: dict = field(default_factory=dict)  # training objective -> why it does not apply here
    networks: tuple = ()  # the ``network_*`` sections it runs besides network_g and network_encoder (frozen)



def complete_pixel_networks(opt, diffusion):
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
    num_out_ch = unet.get('num_out_ch', arch_default(unet['type'], 'num_out_ch'))
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


def complete_latent_networks(opt, diffusion):
    """StableSR's family: the latent's channels agree across the VAE, the U-Net (input; output: one set per head)
    and the time-aware encoder (input), whose output channels are the SPADEs' condition channels."""
    require(opt.get('scale'), lambda v: is_int(v) and v >= 1, 'scale', 'an integer >= 1')
    value = {section: {**{k: arch_default(opt[section]['type'], k) for k in keys}, **opt[section]}
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



def _lr_up(default, whose):
    return Option(default, f'the upsampling the diffusion is relative to, one of {sorted(UPSAMPLERS)} ({whose})',
                  must_be(lambda v: v in UPSAMPLERS, f'one of {sorted(UPSAMPLERS)}'))


# ``diffusion.space``: a new family's space is one class and one entry
SPACES = {
    'pixel_residual': SpaceEntry(
        lambda scale, networks, **options: PixelResidualSpace(scale, **options),
        {'res_rescale': Option(2.0, 'the residual is multiplied by it before diffusion (SRDiff: 2; ECDP: 2.5)', positive),
         'clip_x0': Option(True, 'clamp x0 to [-1, 1] in training and at every step (SRDiff: true; ECDP: false)',
                           must_be(lambda v: isinstance(v, bool), 'true or false')),
         'lr_up': _lr_up('matlab', "SRDiff's MATLAB bicubic; ECDP: bicubic_antialias")},
        ProjectedCondition, complete_pixel_networks,
        loss={'type': 'L1Loss', 'loss_weight': 1.0},  # the paper's
        required_weights={'pretrain_network_encoder': 'SRDiff needs a pretrained LR encoder (train one with '
                          'options/train_rrdb_*.yml, then point this at its models/net_g_*.pth)'}),
    'vae_latent': SpaceEntry(
        lambda scale, networks, **options: VAELatentSpace(networks['network_vae'], scale, **options),
        {'scale_factor': Option(0.18215, "x0 = scale_factor x the VAE's latent (Stable Diffusion's)", positive),
         'fidelity': Option(0.5, "CFW's weight: 0 the plain VAE decoder to 1 closest to the LR (StableSR's scripts: 0.5)",
                            must_be(lambda v: is_number(v) and 0 <= v <= 1, 'a number in [0, 1]')),
         'lr_up': _lr_up('bilinear_antialias', "StableSR's old script: torchvision's bilinear Resize"),
         'posterior': Option('sample', "the VAE posterior's draw (the official) or its mean",
                             must_be(lambda v: v in ('sample', 'mean'), 'sample or mean')),
         'vae_tile': Option(None, f'~ (whole images) or {{size, overlap}} in output pixels, multiples of {VAE_FACTOR}: '
                                  'the VAE on Gaussian-blended tiles',
                            must_be(valid_vae_tile, f'~ (whole images) or {{size, overlap}}: output pixels, multiples '
                                                    f'of {VAE_FACTOR}, overlap < size'))},
        TimeAwareCondition, complete_latent_networks,
        loss={'type': 'MSELoss', 'loss_weight': 1.0},  # StableSR's (latent diffusion's l2)
        required_weights={
            'pretrain_network_vae': "StableSR starts from the VAE (a converted StableSR checkpoint's net_vae_official)",
            'pretrain_network_g': "StableSR starts from the U-Net (SD 2.1's, or a converted StableSR checkpoint's "
                                  'net_g_official)'},
        refuses={'image_quality': "ECDP's fine-tuning is for pixel-space models, not StableSR"},
        networks=('network_vae', )),
}
