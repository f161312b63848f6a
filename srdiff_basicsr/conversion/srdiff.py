"""Official SRDiff checkpoints (github LeiaLi/SRDiff) -> this project's BasicSR-format weights.

An official ``.ckpt`` is ``{'global_step', 'optimizer_states', 'state_dict': {'model': sd}}`` where
``sd`` holds ``denoise_fn.*`` (the U-Net, whose module names ours keep but for the middle attention's),
``rrdb.*`` (the encoder, renamed here to BasicSR's RRDBNet names) and the diffusion tables (recomputed by
us, only checked). The network options, the official ``use_attn`` and ``up_input`` included, are read off
the keys and tensor shapes; weight-normed layers (``use_wn``) become plain weights.
"""
import re

import numpy as np
import torch

from srdiff_basicsr.diffusion.schedule import cosine_betas

_ENCODER_RENAMES = [
    (r'^RRDB_trunk\.(\d+)\.RDB(\d)\.', lambda m: f'body.{m.group(1)}.rdb{m.group(2)}.'),
    (r'^trunk_conv\.', lambda m: 'conv_body.'),
    (r'^upconv(\d)\.', lambda m: f'conv_up{m.group(1)}.'),
    (r'^HRconv\.', lambda m: 'conv_hr.'),
]


_UNET_RENAMES = [  # Residual(Rezero(LinearAttention)) -> MidAttention
    (r'^mid_attn\.fn\.g$', lambda m: 'mid_attn.gate'),
    (r'^mid_attn\.fn\.fn\.', lambda m: 'mid_attn.'),
]


def renamed(official_key, renames):
    """The key after the first (pattern, replacement) of ``renames`` that matches it (``re.subn``), else itself."""
    for pattern, repl in renames:
        key, count = re.subn(pattern, repl, official_key)
        if count:
            return key
    return official_key


def read_torch_checkpoint(path, allow_pickle=False):
    """The state dict of a ``.ckpt`` (Lightning's ``state_dict``, the official SRDiff's ``state_dict.model``) or of
    a bare state dict; loaded without unpickling code unless ``allow_pickle``."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such checkpoint file') from None
    except Exception as error:
        hint = '' if allow_pickle else (' If you trust the file, retry with --allow-pickle '
                                        '(it then runs the pickled code in it).')
        raise ValueError(f'{path}: cannot read it as a torch checkpoint: {error}.{hint}') from None
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
        ckpt = ckpt.get('model', ckpt)
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path}: not a checkpoint (no state dict in it)')
    return ckpt


def load_official_checkpoint(path, allow_pickle=False):
    """The model state dict of an official SRDiff ``.ckpt`` (or of a bare state dict)."""
    ckpt = read_torch_checkpoint(path, allow_pickle)
    if not any(k.startswith('denoise_fn.') for k in ckpt):
        raise ValueError(f'{path}: not an official SRDiff checkpoint (no denoise_fn.* weights found)')
    return ckpt


def convert_official_state_dict(state_dict):
    """Split and rename an official SRDiff state dict.

    Returns:
        (unet_sd, encoder_sd, options): the SRDiffUNet and SRDiffRRDBNet weights, and
        ``options`` = {'network_g': ..., 'network_encoder': ..., 'diffusion': ...} for an options file.
    """
    unet_sd, encoder_sd = {}, {}
    for key, value in fold_weight_norm(state_dict).items():
        if key.startswith('denoise_fn.'):
            unet_sd[renamed(key[len('denoise_fn.'):], _UNET_RENAMES)] = value
        elif key.startswith('rrdb.'):
            encoder_sd[renamed(key[len('rrdb.'):], _ENCODER_RENAMES)] = value
    if not encoder_sd:
        raise ValueError('the checkpoint has no rrdb.* (encoder) weights: it is not a complete SRDiff checkpoint '
                         '(the official code saves the encoder with the U-Net; was it trained with use_rrdb: false?)')
    options = infer_options(unet_sd, encoder_sd)
    if 'betas' in state_dict:
        options['diffusion'] = _check_betas(state_dict['betas'])
    return unet_sd, encoder_sd, options


def fold_weight_norm(state_dict):
    """``X.weight_g``, ``X.weight_v`` of ``torch.nn.utils.weight_norm`` (dim 0) -> ``X.weight = g v / ||v||``,
    the norm over all dimensions but the first."""
    folded = {}
    for key, value in state_dict.items():
        if key.endswith('.weight_v'):
            stem = key[:-len('_v')]
            norm = value.flatten(1).norm(dim=1).view(-1, *[1] * (value.dim() - 1))
            folded[stem] = state_dict[stem + '_g'] * value / norm
        elif not key.endswith('.weight_g'):
            folded[key] = value
    return folded


def infer_options(unet_sd, encoder_sd):
    """Network options read off the tensor shapes of converted weights."""
    num_feat = encoder_sd['conv_first.weight'].shape[0]
    num_block = 1 + max(int(k.split('.')[1]) for k in encoder_sd if k.startswith('body.'))
    num_grow_ch = encoder_sd['body.0.rdb1.conv1.weight'].shape[0]
    scale = 2**sum(1 for k in encoder_sd if re.fullmatch(r'conv_up\d\.weight', k))
    dim = unet_sd['cond_proj.weight'].shape[1]
    num_levels = 1 + max(int(k.split('.')[1]) for k in unet_sd if k.startswith('downs.'))
    dim_mults = [unet_sd[f'downs.{i}.0.block1.block.1.weight'].shape[0] // dim for i in range(num_levels)]
    return {
        'network_g': dict(type='SRDiffUNet', dim=dim, dim_mults=dim_mults, scale=scale,
                          encoder_num_feat=num_feat, encoder_num_block=num_block,
                          use_attn='mid_attn.gate' in unet_sd, up_input='up_proj.1.weight' in unet_sd),
        'network_encoder': dict(type='SRDiffRRDBNet', scale=scale, num_feat=num_feat, num_block=num_block,
                                num_grow_ch=num_grow_ch),
    }


def _check_betas(betas):
    timesteps = len(betas)
    if not np.allclose(betas.double().numpy(), cosine_betas(timesteps), atol=1e-6):
        raise ValueError('the checkpoint was not trained with the cosine schedule (s = 0.008); '
                         'this project implements only that one')
    return dict(schedule='cosine', timesteps=timesteps, cosine_s=0.008)
