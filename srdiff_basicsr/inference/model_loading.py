"""An SRDiffModel for inference from what users have: an experiment folder, a converted official
checkpoint folder, or weight files with an options file."""
import glob
import logging
from os import path as osp

import torch
import yaml
from basicsr.models import build_model
from basicsr.utils import get_root_logger

from srdiff_basicsr.models import OptionsError
from srdiff_basicsr.models.weights import WeightsError


def resolve_model_files(model, encoder=None, options=None):
    """(U-Net weights, encoder weights, options file) for ``--model`` and the optional overrides.

    - an experiment folder (``experiments/<name>``): ``models/net_g_latest.pth``,
      ``models/net_encoder_latest.pth`` and the options file BasicSR copied into the folder;
    - a folder written by ``scripts/convert_official_checkpoint.py``: ``net_g_official.pth``,
      ``net_encoder_official.pth``, ``network_options.yml``;
    - a U-Net weight file ``.../net_g_<x>.pth``: the encoder ``net_encoder_<x>.pth`` next to it and
      ``--options`` (any options file with network_g, network_encoder and scale).
    """
    if osp.isdir(model):
        official = osp.join(model, 'net_g_official.pth')
        if osp.isfile(official):
            found = official, osp.join(model, 'net_encoder_official.pth'), osp.join(model, 'network_options.yml')
        else:
            models_dir = osp.join(model, 'models')
            yml = sorted(glob.glob(osp.join(model, '*.yml')))
            found = (osp.join(models_dir, 'net_g_latest.pth'), osp.join(models_dir, 'net_encoder_latest.pth'),
                     yml[0] if len(yml) == 1 else None)
            if not osp.isdir(models_dir):
                raise WeightsError(f'--model {model}: neither an experiment folder (no models/) nor a converted '
                                   'official checkpoint (no net_g_official.pth)')
    elif osp.isfile(model):
        folder, name = osp.split(model)
        sibling = osp.join(folder, name.replace('net_g', 'net_encoder', 1)) if name.startswith('net_g') else None
        beside = osp.join(folder, 'network_options.yml')
        found = model, sibling, beside if osp.isfile(beside) else None
    else:
        raise FileNotFoundError(f'--model: no such file or folder: {model}')
    net_g, net_encoder, options_file = model_file(found[0], '--model'), encoder or found[1], options or found[2]
    if net_encoder is None:
        raise WeightsError(f'--model {model}: cannot tell where the encoder weights are; give --encoder')
    if options_file is None:
        raise OptionsError(f'--model {model}: no options file with the network sizes found; give --options')
    return net_g, model_file(net_encoder, '--encoder'), model_file(options_file, '--options')


def model_file(path, option):
    if not osp.isfile(path):
        raise WeightsError(f'{option}: no such file: {path}')
    return path


def load_srdiff(model, device='cpu', encoder=None, options=None):
    """The SRDiffModel (EMA weights when saved), in eval mode on ``device``."""
    net_g, net_encoder, options_file = resolve_model_files(model, encoder, options)
    with open(options_file) as f:
        opt = yaml.safe_load(f)
    missing = [key for key in ('network_g', 'network_encoder') if key not in (opt or {})]
    if missing:
        raise OptionsError(f'{options_file}: no {" or ".join(missing)} section')
    scale = opt.get('scale', opt['network_g'].get('scale'))
    get_root_logger(log_level=logging.WARNING)  # BasicSR's model start-up logs at INFO
    return build_model(dict(
        name='srdiff_infer', model_type='SRDiffModel', scale=scale, is_train=False, dist=False, rank=0, world_size=1,
        num_gpu=1 if torch.device(device).type == 'cuda' else 0, network_g=opt['network_g'],
        network_encoder=opt['network_encoder'], diffusion=opt.get('diffusion') or {},
        path=dict(pretrain_network_g=net_g, param_key_g='params_ema', strict_load_g=True,
                  pretrain_network_encoder=net_encoder), val={}))
