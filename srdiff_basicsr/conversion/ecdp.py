"""ECDP checkpoints (github Yuan-Yutao/ECDP) -> this project's BasicSR-format weights.

An ECDP checkpoint holds ``model`` and its EMA copy ``model_avg`` (which ECDP evaluates with), state dicts
with ``model.diffusion.network.*`` (the U-Net: ``ECDPUNet``), ``model.lr_feats.*`` (the RRDB feature
extractor: ``SRDiffRRDBNet``'s ``conv_first`` and ``body``) and ``model.diffusion.{betas, alphas, alpha_bars}``
(checked against the VP schedule, then dropped). ECDP's RRDB has no trunk conv and no upsampling tail; the
converted encoder has them at zero: ECDP conditions on the blocks' outputs only, so they are never used
(its ``forward``, the SR image of a pretraining run, is then meaningless). The options written reproduce
ECDP: the condition resized from the LR maps with antialias, the residual over torchvision's antialiased
bicubic, the hybrid parametrization, residual x 5, no clipping.
"""
import re

import torch

from srdiff_basicsr.conversion.srdiff import renamed
from srdiff_basicsr.diffusion.schedule import vp_log_alpha_bar

_UNET_RENAMES = [
    (r'^time_in\.(\d)\.', r'time_mlp.\1.'),
    (r'^in_conv\.network\.', 'in_conv.'),
    (r'^(downs|mid|ups)\.(\d+)\.extra_in\.network\.', r'\1.\2.cond_in.'),
    (r'^(downs|mid|ups)\.(\d+)\.(conv1|conv2|skip)\.network\.', r'\1.\2.\3.'),
    (r'^downs\.(\d+)\.downconv\.network\.', r'downs.\1.'),
    (r'^ups\.(\d+)\.upconv\.1\.network\.', r'ups.\1.1.'),
    (r'^out_conv\.0\.', 'out.0.'),
    (r'^out_conv\.2\.network\.', 'out.2.'),
]
_ENCODER_RENAMES = [(r'^blocks\.(\d+)\.block(\d)\.', r'body.\1.rdb\2.')]
# ECDP's released configurations: the RRDB blocks whose outputs condition the U-Net, by encoder depth
FEATURE_BLOCKS = {23: [1, 8, 15, 22], 8: [1, 3, 5, 7]}


def rename_ecdp_key(key):
    """(section, key) of ours for an ECDP key without the leading ``model.``: section ``network_g`` or
    ``network_encoder``, or None for the schedule buffers and anything else."""
    if key.startswith('diffusion.network.'):
        return 'network_g', renamed(key[len('diffusion.network.'):], _UNET_RENAMES)
    if key.startswith('lr_feats.'):
        return 'network_encoder', renamed(key[len('lr_feats.'):], _ENCODER_RENAMES)
    return None, key


def load_ecdp_checkpoint(path, weights='model_avg', allow_pickle=False):
    """The state dict ``weights`` (model_avg: the EMA weights ECDP tests with; or model) of an ECDP checkpoint,
    or a bare state dict; keys with or without the leading ``model.``."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such checkpoint file') from None
    except Exception as error:
        hint = '' if allow_pickle else ' If you trust the file, retry with --allow-pickle.'
        raise ValueError(f'{path}: cannot read it as a torch checkpoint: {error}.{hint}') from None
    if isinstance(ckpt, dict) and weights in ckpt and isinstance(ckpt[weights], dict):
        ckpt = ckpt[weights]
    elif isinstance(ckpt, dict) and {'model', 'model_avg'} & set(ckpt):
        raise ValueError(f'{path}: has no {weights!r} entry (it has {sorted(k for k in ckpt if k.startswith("model"))})')
    state_dict = {key[len('model.'):] if key.startswith('model.') else key: value for key, value in ckpt.items()}
    if not any(key.startswith('diffusion.network.') for key in state_dict):
        raise ValueError(f'{path}: not an ECDP checkpoint (no model.diffusion.network.* weights found)')
    return state_dict


def convert_ecdp_state_dict(state_dict, scale, feature_blocks=None):
    """Split and rename an ECDP state dict (keys without the leading ``model.``).

    Args:
        scale (int): the SR factor (ECDP's weights do not show it: 4 for DF2K, 8 for CelebA).
        feature_blocks (list[int] | None): the RRDB blocks conditioning the U-Net (``rrdb_block_selection``);
            default ECDP's for its two encoder depths.
    Returns:
        (unet_sd, encoder_sd, options): ``ECDPUNet`` and ``SRDiffRRDBNet`` weights, and the options sections
        ``network_g``, ``network_encoder``, ``diffusion`` that reproduce ECDP.
    """
    sections, unknown = {'network_g': {}, 'network_encoder': {}}, []
    for key, value in state_dict.items():
        section, ours = rename_ecdp_key(key)
        if section:
            sections[section][ours] = value
        elif key not in ('diffusion.betas', 'diffusion.alphas', 'diffusion.alpha_bars'):
            unknown.append(key)
    unet_sd, encoder_sd = sections['network_g'], sections['network_encoder']
    if unknown:
        raise ValueError(f'unexpected keys in the ECDP checkpoint: {unknown[:10]}{" ..." if len(unknown) > 10 else ""}')
    if not encoder_sd:
        raise ValueError('the checkpoint has no model.lr_feats.* (RRDB) weights')
    if 'diffusion.alpha_bars' in state_dict:
        _check_schedule(state_dict['diffusion.alpha_bars'])
    num_feat = encoder_sd['conv_first.weight'].shape[0]
    num_block = 1 + max(int(k.split('.')[1]) for k in encoder_sd if k.startswith('body.'))
    if feature_blocks is None:
        if num_block not in FEATURE_BLOCKS:
            raise ValueError(f'an RRDB of {num_block} blocks is not one of ECDP\'s configurations; give the blocks '
                             'that condition the U-Net (rrdb_block_selection) with --feature-blocks')
        feature_blocks = FEATURE_BLOCKS[num_block]
    _add_encoder_tail(encoder_sd, num_feat, scale)
    options = {
        'network_g': _unet_options(unet_sd, scale, num_feat, num_block, list(feature_blocks)),
        'network_encoder': dict(type='SRDiffRRDBNet', scale=scale, num_feat=num_feat, num_block=num_block,
                                num_grow_ch=encoder_sd['body.0.rdb1.conv1.weight'].shape[0]),
        'diffusion': dict(schedule='vp', timesteps=300, beta_min=0.1, beta_max=20.0, t_max=300.0, res_rescale=2.5,
                          clip_x0=False, lr_up='bicubic_antialias',
                          parametrization='hybrid' if unet_sd['out.2.weight'].shape[0] == 6 else 'eps'),
    }
    return unet_sd, encoder_sd, options


def _unet_options(unet_sd, scale, encoder_num_feat, encoder_num_block, feature_blocks):
    num_blocks = min(int(k.split('.')[1]) for k in unet_sd if re.fullmatch(r'downs\.\d+\.weight', k))
    channels, index = [], 0
    while f'downs.{index}.conv1.weight' in unet_sd:
        channels.append(unet_sd[f'downs.{index}.conv1.weight'].shape[0])
        index += num_blocks + 1
    return dict(type='ECDPUNet', channels=channels, num_blocks=num_blocks,
                time_dim=unet_sd['time_mlp.0.weight'].shape[1], scale=scale, encoder_num_feat=encoder_num_feat,
                encoder_num_block=encoder_num_block, feature_blocks=feature_blocks,
                num_out_ch=unet_sd['out.2.weight'].shape[0], condition_resize='lr', condition_antialias=True)


def _add_encoder_tail(encoder_sd, num_feat, scale):
    """Zero weights for what SRDiffRRDBNet has and ECDP's RRDB lacks (never used when conditioning)."""
    like = encoder_sd['conv_first.weight']
    names = ['conv_body', *(f'conv_up{i}' for i in range(1, scale.bit_length())), 'conv_hr']
    for name in names:
        encoder_sd[f'{name}.weight'] = like.new_zeros(num_feat, num_feat, 3, 3)
        encoder_sd[f'{name}.bias'] = like.new_zeros(num_feat)
    encoder_sd['conv_last.weight'] = like.new_zeros(like.shape[1], num_feat, 3, 3)
    encoder_sd['conv_last.bias'] = like.new_zeros(like.shape[1])


def _check_schedule(alpha_bars):
    steps = len(alpha_bars)
    s = torch.arange(1, steps + 1, dtype=torch.float64) / steps
    expected = vp_log_alpha_bar(s, 0.1, 20.0).exp()
    if steps != 300 or not torch.allclose(alpha_bars.double(), expected, rtol=1e-5, atol=1e-7):
        raise ValueError('the checkpoint\'s alpha_bars are not ECDP\'s VP schedule (300 steps, beta 0.1 to 20)')
