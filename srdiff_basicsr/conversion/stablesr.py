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

import torch

from srdiff_basicsr.archs.arch_options import meta_network
from srdiff_basicsr.archs.openclip_text_arch import empty_prompt_embedding
from srdiff_basicsr.conversion.srdiff import renamed
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.errors import WeightsError

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


def config_from_official(ldm, cfw):
    """``RELEASED_CONFIG``'s keys from the official configurations' ``model`` sections (the diffusion model's
    ``LatentDiffusionSRTextWT`` and the CFW autoencoder's), e.g. configs/stableSRNew/v2-finetune_text_T_512.yaml
    and configs/autoencoder/autoencoder_kl_64x64x4_resi.yaml."""
    try:
        params, cfw_params = ldm['params'], cfw['params']
        config = {'unet': params['unet_config']['params'], 'structcond': params['structcond_stage_config']['params'],
                  'ddconfig': cfw_params['ddconfig'], 'embed_dim': cfw_params['embed_dim']}
        config.update({key: params.get(key, RELEASED_CONFIG[key])
                       for key in ('scale_factor', 'linear_start', 'linear_end', 'timesteps')})
    except (KeyError, TypeError) as error:
        raise WeightsError(f'not a StableSR configuration (model.params...): {error} missing') from None
    if params.get('parameterization', 'eps') != 'eps':
        raise WeightsError(f"parameterization {params['parameterization']}: only StableSR's eps model is converted")
    return {**RELEASED_CONFIG, **config}


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


def stablesr_options(config=RELEASED_CONFIG, scale=4):
    """The network_options.yml of a converted StableSR: its networks, its diffusion (the VAE latent, Stable
    Diffusion's schedule, eps, CFW at 0.5, the old script's bilinear upsampling and posterior sample) and its
    default sampler (StableSR's 200 respaced DDPM steps)."""
    return {'scale': scale, **network_options(config),
            'diffusion': {'space': 'vae_latent', 'schedule': 'scaled_linear', 'timesteps': config['timesteps'],
                          'linear_start': config['linear_start'], 'linear_end': config['linear_end'],
                          'parametrization': 'eps', 'scale_factor': config['scale_factor'], 'fidelity': 0.5,
                          'lr_up': 'bilinear_antialias', 'posterior': 'sample'},
            'sampler': {'type': 'ddpm_spaced', 'steps': 200}}


def convert_stablesr_checkpoints(diffusion_sd, cfw_sd, config=RELEASED_CONFIG, scale=4):
    """({'g', 'encoder', 'vae'}: our state dicts, options) of StableSR's diffusion and CFW state dicts; a
    WeightsError naming the keys that are missing or left over, or a schedule that is not the configuration's.
    The U-Net's ``empty_context`` is the empty prompt's embedding by the checkpoint's text tower."""
    parts, unknown = split_checkpoint(diffusion_sd)
    if unknown:  # the official loads with strict=False, which would drop them without a word
        raise WeightsError(f'diffusion checkpoint: {len(unknown)} key(s) of no StableSR part: {_names(unknown)}. The '
                           'official scripts load with strict=False and ignore such keys; they are refused here, as '
                           'they mean a checkpoint of another model or version (e.g. model_ema.* of an EMA run) '
                           'whose weights would silently go unused')
    if not parts['text']:
        raise WeightsError('diffusion checkpoint: no cond_stage_model.model.* (the OpenCLIP text tower), which the '
                           "empty prompt's embedding is computed from")
    _check_schedule(parts['schedule'], config)
    cfw_sd = {k: v for k, v in cfw_sd.items() if not k.startswith('loss.')}  # the discriminator and LPIPS: training
    _check_first_stage(parts['first_stage'], cfw_sd)
    vae_sd = convert_vae_state_dict(cfw_sd)
    unet_sd = {**parts['unet'], 'empty_context': empty_prompt_embedding(parts['text']).to(torch.float32)}
    options = stablesr_options(config, scale)
    converted = {'g': unet_sd, 'encoder': parts['time_aware_encoder'], 'vae': vae_sd}
    for name, section, what in (('g', 'network_g', 'diffusion checkpoint model.diffusion_model'),
                                ('encoder', 'network_encoder', 'diffusion checkpoint structcond_stage_model'),
                                ('vae', 'network_vae', 'CFW checkpoint')):
        _check_layout(converted[name], meta_network(options[section]), what)
    return converted, options


def _check_layout(state_dict, net, what):
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(state_dict[k].shape) != expected[k])
    problems = [f'{label} {_names(keys)}' for label, keys in (('missing', missing), ('unexpected', unexpected),
                                                               ('of another shape', wrong)) if keys]
    if problems:
        raise WeightsError(f'{what}: not the configuration converted to: ' + '; '.join(problems))


def _check_schedule(buffers, config):
    """Every schedule buffer of the checkpoint equal to our table of the configuration's schedule (float32
    round-off), so that sampling with our tables is sampling with the checkpoint's."""
    buffers = {name: buffer for name, buffer in buffers.items() if not buffer.is_meta}  # a layout: shapes only
    if not buffers:
        return
    schedule = DiscreteSchedule.from_options('scaled_linear', config['timesteps'], linear_start=config['linear_start'],
                                             linear_end=config['linear_end'])
    tables = {name: getattr(schedule, name, None) for name in SCHEDULE_BUFFERS}
    tables['log_one_minus_alphas_cumprod'] = torch.log(1 - schedule.alphas_cumprod.double())
    for name, buffer in buffers.items():
        expected = tables[name].double()
        if buffer.shape != expected.shape or not torch.allclose(buffer.double(), expected, rtol=1e-5, atol=1e-8):
            raise WeightsError(f"diffusion checkpoint: its {name} is not Stable Diffusion's scaled linear schedule's "
                               f"({config['linear_start']} to {config['linear_end']} over {config['timesteps']} "
                               'steps), which this conversion samples with')


def _check_first_stage(first_stage, cfw_sd):
    """The diffusion checkpoint's VAE encoder equal to the CFW checkpoint's: the official tile script encodes the LR
    with ``first_stage_model`` and the old script with the CFW VAE; the converted model has one VAE for both."""
    keys = sorted(k for k in first_stage if k.startswith(('encoder.', 'quant_conv.')) and not first_stage[k].is_meta)
    differing = [k for k in keys if k not in cfw_sd or cfw_sd[k].shape != first_stage[k].shape
                 or not torch.equal(cfw_sd[k], first_stage[k])]
    if differing:
        raise WeightsError(f'the diffusion checkpoint\'s first_stage_model and the CFW checkpoint\'s VAE encoder '
                           f'differ ({_names(differing)}): the official tile script encodes the LR with the former, '
                           'the old script with the latter, and the converted model keeps one VAE for both. Convert '
                           'a diffusion checkpoint with the CFW checkpoint made from its own VAE')


def _names(keys, shown=8):
    return ', '.join(keys[:shown]) + (f' and {len(keys) - shown} more' if len(keys) > shown else '')
