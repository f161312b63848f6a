"""Stable Diffusion 2.x in diffusers' folder format (e.g. stabilityai/stable-diffusion-2-1-base) -> the start of
StableSR's first stage, as the official starts it from SD 2.1's weights: the U-Net under the official (LDM) names of
``StableSRUNet`` with its SPADEs left to their initialisation, the VAE (diffusers' names are ours) without the CFW
layers, and the empty prompt's embedding computed once by the folder's text encoder (its last layer then its final
layer norm, which is what diffusers' SD 2 pipelines condition on: their converted text encoders keep 23 of
OpenCLIP's 24 layers, so this is OpenCLIP's penultimate layer, as StableSR's).

The folder: ``unet/``, ``vae/``, ``text_encoder/`` (each a ``config.json`` and ``diffusion_pytorch_model`` or
``model`` weights, ``.safetensors`` or ``.bin``, fp16 variants too) and ``scheduler/scheduler_config.json``.
"""
import json
from os import path as osp

import torch

from srdiff_basicsr.archs.openclip_text_arch import OpenCLIPTextTower, empty_prompt_tokens
from srdiff_basicsr.conversion.stablesr import RELEASED_CONFIG, network_options
from srdiff_basicsr.errors import WeightsError

WEIGHT_NAMES = ('diffusion_pytorch_model', 'model')
RESNET = {'norm1': 'in_layers.0', 'conv1': 'in_layers.2', 'norm2': 'out_layers.0', 'conv2': 'out_layers.3',
          'time_emb_proj': 'emb_layers.1', 'conv_shortcut': 'skip_connection'}
SCHEDULE = {'beta_schedule': 'scaled_linear', 'beta_start': RELEASED_CONFIG['linear_start'],
            'beta_end': RELEASED_CONFIG['linear_end'], 'num_train_timesteps': RELEASED_CONFIG['timesteps']}


def read_component(folder, component):
    """(config, float32 state dict) of ``folder/component``; an error naming what is missing."""
    where = osp.join(folder, component)
    try:
        with open(osp.join(where, 'config.json')) as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise WeightsError(f'{where}/config.json: cannot be read ({error}); is {folder} a diffusers Stable Diffusion '
                           'folder (e.g. stabilityai/stable-diffusion-2-1-base)?') from None
    names = [f'{name}{variant}{ext}' for name in WEIGHT_NAMES for variant in ('', '.fp16')
             for ext in ('.safetensors', '.bin')]
    path = next((osp.join(where, n) for n in names if osp.isfile(osp.join(where, n))), None)
    if path is None:
        raise WeightsError(f'{where}: no weight file ({", ".join(names[:2])}, ...)')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state_dict = load_file(path)
    else:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    return config, {k: v.float() for k, v in state_dict.items()}


def unet_renames(levels, num_res_blocks, attention_levels):
    """(diffusers prefix, LDM prefix) of SD's U-Net: ``levels`` resolutions, ``attention_levels`` those with
    transformers (counted from the full resolution)."""
    n, renames = num_res_blocks, [('time_embedding.linear_1.', 'time_embed.0.'), ('time_embedding.linear_2.',
                                                                                 'time_embed.2.'),
                                  ('conv_in.', 'input_blocks.0.0.'), ('conv_norm_out.', 'out.0.'), ('conv_out.', 'out.2.')]
    for i in range(levels):
        for j in range(n):
            block = (n + 1) * i + j + 1
            renames.append((f'down_blocks.{i}.resnets.{j}.', f'input_blocks.{block}.0.'))
            if i in attention_levels:
                renames.append((f'down_blocks.{i}.attentions.{j}.', f'input_blocks.{block}.1.'))
        if i < levels - 1:
            renames.append((f'down_blocks.{i}.downsamplers.0.conv.', f'input_blocks.{(n + 1) * (i + 1)}.0.op.'))
        level = levels - 1 - i  # the up blocks go from the coarsest level
        for j in range(n + 1):
            renames.append((f'up_blocks.{i}.resnets.{j}.', f'output_blocks.{(n + 1) * i + j}.0.'))
            if level in attention_levels:
                renames.append((f'up_blocks.{i}.attentions.{j}.', f'output_blocks.{(n + 1) * i + j}.1.'))
        if i < levels - 1:
            position = 2 if level in attention_levels else 1
            renames.append((f'up_blocks.{i}.upsamplers.0.', f'output_blocks.{(n + 1) * i + n}.{position}.'))
    renames += [('mid_block.resnets.0.', 'middle_block.0.'), ('mid_block.attentions.0.', 'middle_block.1.'),
                ('mid_block.resnets.1.', 'middle_block.2.')]
    return renames


def convert_unet(state_dict, levels, num_res_blocks, attention_levels):
    renames, converted, unknown = unet_renames(levels, num_res_blocks, attention_levels), {}, []
    for key, value in state_dict.items():
        prefix = next(((d, ldm) for d, ldm in renames if key.startswith(d)), None)
        if prefix is None:
            unknown.append(key)
            continue
        rest = key[len(prefix[0]):]
        if '.resnets.' in prefix[0]:
            name, _, leaf = rest.partition('.')
            rest = f'{RESNET.get(name, name)}.{leaf}'
        converted[prefix[1] + rest] = value
    if unknown:
        raise WeightsError(f'unet: {len(unknown)} key(s) of no SD U-Net part: {", ".join(sorted(unknown)[:6])}')
    return converted


def text_tower_state_dict(state_dict, width):
    """transformers' ``CLIPTextModel`` -> open_clip's text names (q, k, v joined into ``in_proj``; no projection:
    a zero stand-in, unused for the embedding)."""
    prefix = 'text_model.'
    sd = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}
    out = {'token_embedding.weight': sd.pop('embeddings.token_embedding.weight'),
           'positional_embedding': sd.pop('embeddings.position_embedding.weight'),
           'ln_final.weight': sd.pop('final_layer_norm.weight'), 'ln_final.bias': sd.pop('final_layer_norm.bias'),
           'text_projection': torch.zeros(width, width), 'logit_scale': torch.zeros(())}
    sd.pop('embeddings.position_ids', None)
    layers = 1 + max(int(k.split('.')[2]) for k in sd if k.startswith('encoder.layers.'))
    names = {'self_attn.out_proj': 'attn.out_proj', 'layer_norm1': 'ln_1', 'layer_norm2': 'ln_2',
             'mlp.fc1': 'mlp.c_fc', 'mlp.fc2': 'mlp.c_proj'}
    for i in range(layers):
        hf, ours = f'encoder.layers.{i}.', f'transformer.resblocks.{i}.'
        for leaf in ('weight', 'bias'):
            out[f'{ours}attn.in_proj_{leaf}'] = torch.cat([sd.pop(f'{hf}self_attn.{p}_proj.{leaf}') for p in 'qkv'])
            for theirs, mine in names.items():
                out[f'{ours}{mine}.{leaf}'] = sd.pop(f'{hf}{theirs}.{leaf}')
    if sd:
        raise WeightsError(f'text_encoder: {len(sd)} key(s) of no CLIP text part: {", ".join(sorted(sd)[:6])}')
    return out


@torch.no_grad()
def text_embedding(config, state_dict):
    """(1, 77, width): the empty prompt after every layer of the text encoder and its final layer norm."""
    if config.get('hidden_act', 'gelu') != 'gelu':
        raise WeightsError(f"text_encoder: hidden_act {config['hidden_act']!r}: only SD 2.x's OpenCLIP text encoder "
                           '(gelu) is converted')
    width = config['hidden_size']
    if config.get('intermediate_size') != 4 * width:
        raise WeightsError(f"text_encoder: intermediate_size {config.get('intermediate_size')} is not 4 x hidden_size "
                           f"{width}: not OpenCLIP's text tower")
    tower = OpenCLIPTextTower.from_state_dict(text_tower_state_dict(state_dict, width),
                                              config['num_attention_heads']).eval()
    return tower(empty_prompt_tokens(tower.positional_embedding.shape[0]), skip_last=0)


def check_scheduler(folder):
    """SD 2.x-base's training schedule and eps prediction (the 768 models predict v: not converted)."""
    path = osp.join(folder, 'scheduler', 'scheduler_config.json')
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise WeightsError(f'{path}: cannot be read ({error})') from None
    wrong = {k: config.get(k) for k, v in SCHEDULE.items() if config.get(k) != v}
    if config.get('prediction_type', 'epsilon') != 'epsilon':
        wrong['prediction_type'] = config['prediction_type']
    if wrong:
        raise WeightsError(f'{path}: {wrong} is not StableSR\'s schedule ({SCHEDULE}, epsilon prediction): only '
                           'SD 2.x-base models are converted')


def convert_sd_folder(folder):
    """({'g': U-Net with the empty prompt's ``empty_context``, 'vae': plain VAE}, network options) of a diffusers
    SD 2.x-base folder: the networks of StableSR's first stage at that U-Net's sizes, the time-aware encoder's
    released ones, the VAE without CFW."""
    check_scheduler(folder)
    unet_config, unet_sd = read_component(folder, 'unet')
    vae_config, vae_sd = read_component(folder, 'vae')
    text_config, text_sd = read_component(folder, 'text_encoder')
    widths, heads = unet_config['block_out_channels'], unet_config['attention_head_dim']
    heads = heads if isinstance(heads, list) else [heads] * len(widths)
    attention_levels = [i for i, kind in enumerate(unet_config['down_block_types']) if kind.startswith('CrossAttn')]
    head_channels = {widths[i] // heads[i] for i in attention_levels}
    if len(head_channels) != 1 or not unet_config.get('use_linear_projection', False):
        raise WeightsError(f'unet/config.json: heads {heads} of widths {widths} (linear projection '
                           f"{unet_config.get('use_linear_projection')}): not SD 2.x's U-Net layout")
    unet = {'in_channels': unet_config['in_channels'], 'out_channels': unet_config['out_channels'],
            'model_channels': widths[0], 'num_res_blocks': unet_config['layers_per_block'],
            'attention_resolutions': [2**i for i in attention_levels],
            'channel_mult': [w // widths[0] for w in widths], 'num_head_channels': head_channels.pop(),
            'transformer_depth': 1, 'context_dim': unet_config['cross_attention_dim'],
            'semb_channels': RELEASED_CONFIG['unet']['semb_channels']}
    vae_widths = vae_config['block_out_channels']
    ddconfig = {'in_channels': vae_config['in_channels'], 'ch': vae_widths[0],
                'ch_mult': [w // vae_widths[0] for w in vae_widths], 'num_res_blocks': vae_config['layers_per_block'],
                'z_channels': vae_config['latent_channels']}
    options = network_options({**RELEASED_CONFIG, 'unet': unet, 'ddconfig': ddconfig,
                               'embed_dim': vae_config['latent_channels']})
    options['network_vae']['cfw'] = False
    unet_sd = convert_unet(unet_sd, len(widths), unet['num_res_blocks'], attention_levels)
    unet_sd['empty_context'] = text_embedding(text_config, text_sd)
    return {'g': unet_sd, 'vae': vae_sd}, options
