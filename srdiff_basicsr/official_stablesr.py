"""StableSR's released checkpoints (github IceClear/StableSR) -> this project's networks.

The diffusion checkpoint (``stablesr_000117.ckpt``) holds ``model.diffusion_model.*`` (the U-Net, our
``StableSRUNet`` under the same names), ``structcond_stage_model.*`` (the time-aware encoder, ``TimeAwareEncoder``,
same names), ``first_stage_model.*`` (the VAE), ``cond_stage_model.model.*`` (OpenCLIP's text tower) and the
schedule's buffers; the CFW checkpoint (``vqgan_cfw_00011.ckpt``) the VAE again with the fusion layers
(``decoder.fusion_layer_{1,2}``). Our VAE is diffusers' encoder and decoder: its keys are renamed here (LDM's
``down.i.block.j`` -> ``down_blocks.i.resnets.j``, the decoder's levels in reverse order, the mid attention's 1x1
convolutions -> linear layers).
"""
import re

from srdiff_basicsr.official import renamed

PARTS = {'unet': 'model.diffusion_model.', 'time_aware_encoder': 'structcond_stage_model.',
         'first_stage': 'first_stage_model.', 'text': 'cond_stage_model.model.'}
SCHEDULE_BUFFERS = ('betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod',
                    'sqrt_one_minus_alphas_cumprod', 'log_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod',
                    'sqrt_recipm1_alphas_cumprod', 'posterior_variance', 'posterior_log_variance_clipped',
                    'posterior_mean_coef1', 'posterior_mean_coef2')
_ATTENTION = {'norm': 'group_norm', 'q': 'to_q', 'k': 'to_k', 'v': 'to_v', 'proj_out': 'to_out.0'}


def split_checkpoint(state_dict):
    """{part: its state dict without the prefix} of a diffusion checkpoint (``PARTS``; ``schedule``: the buffers)
    and the keys that belong to no part."""
    parts = {name: {} for name in (*PARTS, 'schedule')}
    unknown = []
    for key, value in state_dict.items():
        part = next((name for name, prefix in PARTS.items() if key.startswith(prefix)), None)
        if part is not None:
            parts[part][key[len(PARTS[part]):]] = value
        elif key in SCHEDULE_BUFFERS:
            parts['schedule'][key] = value
        else:
            unknown.append(key)
    return parts, unknown


def vae_renames(levels):
    """(pattern, replacement) pairs from LDM's VAE keys to ours, for a VAE of ``levels`` resolution levels."""
    def up(m):
        return f'decoder.up_blocks.{levels - 1 - int(m.group(1))}.'
    return [
        (r'^(encoder|decoder)\.mid\.block_(\d)\.', lambda m: f'{m[1]}.mid_block.resnets.{int(m[2]) - 1}.'),
        (r'^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.',
         lambda m: f'{m[1]}.mid_block.attentions.0.{_ATTENTION[m[2]]}.'),
        (r'^encoder\.down\.(\d+)\.block\.(\d+)\.nin_shortcut\.', r'encoder.down_blocks.\1.resnets.\2.conv_shortcut.'),
        (r'^encoder\.down\.(\d+)\.block\.(\d+)\.', r'encoder.down_blocks.\1.resnets.\2.'),
        (r'^encoder\.down\.(\d+)\.downsample\.', r'encoder.down_blocks.\1.downsamplers.0.'),
        (r'^decoder\.up\.(\d+)\.block\.(\d+)\.nin_shortcut\.', lambda m: up(m) + f'resnets.{m[2]}.conv_shortcut.'),
        (r'^decoder\.up\.(\d+)\.block\.(\d+)\.', lambda m: up(m) + f'resnets.{m[2]}.'),
        (r'^decoder\.up\.(\d+)\.upsample\.', lambda m: up(m) + 'upsamplers.0.'),
        (r'^(encoder|decoder)\.norm_out\.', r'\1.conv_norm_out.'),
        (r'^decoder\.fusion_layer_(\d)\.', lambda m: f'fusion.{int(m[1]) - 1}.'),
    ]


def convert_vae_state_dict(state_dict):
    """An LDM (or CFW) VAE state dict under our ``CFWAutoencoder``'s names; the mid attention's 1x1 convolution
    weights become linear ones."""
    levels = 1 + max(int(m[1]) for m in (re.match(r'encoder\.down\.(\d+)\.', k) for k in state_dict) if m)
    renames = vae_renames(levels)
    converted = {}
    for key, value in state_dict.items():
        new = renamed(key, renames)
        if '.attentions.0.' in new and new.endswith('.weight') and value.dim() == 4:
            value = value[:, :, 0, 0]
        converted[new] = value
    return converted


# the released configuration (configs/stableSRNew/v2-finetune_text_T_512.yaml, configs/autoencoder/
# autoencoder_kl_64x64x4_resi.yaml), the parts of it our networks and schedule read
RELEASED_CONFIG = {
    'unet': {'in_channels': 4, 'out_channels': 4, 'model_channels': 320, 'attention_resolutions': [4, 2, 1],
             'num_res_blocks': 2, 'channel_mult': [1, 2, 4, 4], 'num_head_channels': 64, 'transformer_depth': 1,
             'context_dim': 1024, 'semb_channels': 256},
    'structcond': {'in_channels': 4, 'model_channels': 256, 'out_channels': 256, 'num_res_blocks': 2,
                   'attention_resolutions': [1, 2, 4], 'channel_mult': [1, 1, 2, 2], 'num_heads': 4},
    'ddconfig': {'in_channels': 3, 'ch': 128, 'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'z_channels': 4},
    'embed_dim': 4, 'scale_factor': 0.18215, 'linear_start': 0.00085, 'linear_end': 0.012, 'timesteps': 1000,
}


def network_options(config):
    """Our network sections of an official configuration (``RELEASED_CONFIG``'s keys): ``network_g``
    (StableSRUNet), ``network_encoder`` (TimeAwareEncoder), ``network_vae`` (CFWAutoencoder)."""
    unet, enc, dd = config['unet'], config['structcond'], config['ddconfig']
    return {
        'network_g': {'type': 'StableSRUNet', 'in_channels': unet['in_channels'], 'out_channels': unet['out_channels'],
                      'model_channels': unet['model_channels'], 'num_res_blocks': unet['num_res_blocks'],
                      'attention': list(unet['attention_resolutions']), 'channel_mult': list(unet['channel_mult']),
                      'num_head_channels': unet['num_head_channels'], 'transformer_depth': unet['transformer_depth'],
                      'context_dim': unet['context_dim'], 'semb_channels': unet['semb_channels']},
        'network_encoder': {'type': 'TimeAwareEncoder', 'in_channels': enc['in_channels'],
                            'model_channels': enc['model_channels'], 'out_channels': enc['out_channels'],
                            'num_res_blocks': enc['num_res_blocks'], 'attention': list(enc['attention_resolutions']),
                            'channel_mult': list(enc['channel_mult']), 'num_heads': enc['num_heads']},
        'network_vae': {'type': 'CFWAutoencoder', 'in_channels': dd['in_channels'], 'ch': dd['ch'],
                        'ch_mult': list(dd['ch_mult']), 'num_res_blocks': dd['num_res_blocks'],
                        'z_channels': dd['z_channels'], 'embed_dim': config['embed_dim']},
    }
