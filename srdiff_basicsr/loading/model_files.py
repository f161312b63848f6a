"""Where a trained model's files are: its manifest (``model_folder``), or, for folders older than the manifest, an
experiment folder, a converted official checkpoint folder, or weight files (``.pth`` or ``.safetensors``) with an
options file (``legacy_manifest``: the one place that knows those layouts); and that options file, read once."""
import copy
import glob
import os
from os import path as osp

import yaml

from srdiff_basicsr.diffusion.distillation import student_sampler
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.errors import OptionsError, WeightsError
from srdiff_basicsr.loading.model_folder import MANIFEST, Manifest, manifest_path, read_manifest
from srdiff_basicsr.loading.weights import WEIGHT_EXTENSIONS
from srdiff_basicsr.network_options import diffusion_options, network_label


def _first_existing(stem):
    """``stem.pth`` or ``stem.safetensors``, whichever exists (``.pth`` when neither does)."""
    for ext in WEIGHT_EXTENSIONS:
        if osp.isfile(stem + ext):
            return stem + ext
    return stem + WEIGHT_EXTENSIONS[0]


def model_manifest(model, encoder=None, options=None):
    """The ``Manifest`` of ``model``: its ``model.yml``, or one made up by ``legacy_manifest`` (``encoder`` and
    ``options`` are for those only)."""
    path = manifest_path(model)
    if path is not None:
        if encoder is not None or options is not None:
            raise OptionsError(f'--model {model}: its manifest ({path}) names its files; --encoder and --options are '
                               'for folders without one')
        return read_manifest(path)
    if not osp.exists(model):
        raise FileNotFoundError(f'--model: no such file or folder: {model}')
    return legacy_manifest(model, encoder, options)


def legacy_manifest(model, encoder=None, options=None):
    """The manifest of a folder from before ``model.yml``: its files found by ``resolve_model_files`` and
    ``network_files`` (EMA weights when saved), its sampler by ``legacy_sampler``."""
    unet_weights, encoder_weights, options_file = resolve_model_files(model, encoder, options)
    opt = read_model_options(options_file)
    sections = SPACES[diffusion_options(opt.get('diffusion'))['space']].networks
    files = {'network_g': unet_weights, 'network_encoder': encoder_weights, **network_files(unet_weights, sections)}
    model_options = {key: opt[key] for key in ('scale', 'diffusion', *files) if key in opt}
    return Manifest(model_options, {section: (file, 'params_ema') for section, file in files.items()},
                    legacy_sampler(opt), options_file)


def legacy_sampler(opt):
    """An old folder's own sampler: a distilled student's DDIM in its steps (``distill.steps``, or its
    ``train.objective``'s), else the options' top-level ``sampler`` (a converted StableSR's: 200 respaced DDPM
    steps), else None."""
    train = opt.get('train') if isinstance(opt.get('train'), dict) else {}
    for section in (opt.get('distill'), train.get('objective')):
        if isinstance(section, dict) and section.get('steps') and section.get('type', 'distillation') == 'distillation':
            return student_sampler(section['steps'])
    return opt.get('sampler')


def resolve_model_files(model, encoder=None, options=None):
    """(U-Net weights, encoder weights, options file) for ``model`` and the optional overrides.

    - an experiment folder (``experiments/<name>``): ``models/net_g_latest``, ``models/net_encoder_latest``
      and the options file BasicSR copied into the folder;
    - a folder written by ``scripts/convert_official_checkpoint.py``: ``net_g_official``,
      ``net_encoder_official``, ``network_options.yml``;
    - a U-Net weight file ``.../net_g_<x>.pth|.safetensors``: the encoder ``net_encoder_<x>`` next to it and
      ``options`` (any options file with network_g, network_encoder and scale; default
      ``network_options.yml`` beside it).
    """
    if osp.isdir(model):
        official = _first_existing(osp.join(model, 'net_g_official'))
        if osp.isfile(official):
            found = (official, _first_existing(osp.join(model, 'net_encoder_official')),
                     osp.join(model, 'network_options.yml'))
        else:
            models_dir = osp.join(model, 'models')
            if not osp.isdir(models_dir):
                raise WeightsError(f'--model {model}: neither an experiment folder (no models/) nor a converted '
                                   'official checkpoint (no net_g_official.pth)')
            found = (_first_existing(osp.join(models_dir, 'net_g_latest')),
                     _first_existing(osp.join(models_dir, 'net_encoder_latest')), experiment_options_file(model))
    elif osp.isfile(model):
        folder, name = osp.split(model)
        stem = osp.splitext(name)[0]
        sibling = _first_existing(osp.join(folder, stem.replace('net_g', 'net_encoder', 1))) \
            if stem.startswith('net_g') else None
        beside = [osp.join(folder, name) for name in ('network_options.yml', MANIFEST)]
        found = model, sibling, next((path for path in beside if osp.isfile(path)), None)
    else:
        raise FileNotFoundError(f'--model: no such file or folder: {model}')
    net_g, net_encoder, options_file = model_file(found[0], '--model'), encoder or found[1], options or found[2]
    if net_encoder is None:
        raise WeightsError(f'--model {model}: cannot tell where the encoder weights are; give --encoder')
    if options_file is None:
        raise OptionsError(f'--model {model}: no options file with the network sizes found (none, or several that '
                           'define different models); give --options')
    return net_g, model_file(net_encoder, '--encoder'), model_file(options_file, '--options')


def network_files(unet_weights, sections, given=None):
    """{section: file} of a model's other networks (``network_vae`` ...): ``given``'s, else ``net_<name>_<suffix>``
    beside the U-Net's ``net_g_<suffix>`` (a converted folder's ``net_vae_official``, an experiment's
    ``models/net_vae_latest``)."""
    folder, name = osp.split(unet_weights)
    stem = osp.splitext(name)[0]
    files = {}
    for section in sections:
        if given and section in given:
            files[section] = model_file(given[section], f'{section} weights')
        elif stem.startswith('net_g'):
            sibling = stem.replace('net_g', 'net_' + network_label(section), 1)
            files[section] = model_file(_first_existing(osp.join(folder, sibling)),
                                        f'{section} weights (beside {unet_weights})')
        else:
            raise WeightsError(f'{unet_weights}: not named net_g_*, so the {section} weights beside it cannot be found')
    return files


def experiment_options_file(folder):
    """The options file BasicSR copied into an experiment folder. A failed resume with another options file
    leaves a second one: any of them when they define the same model, else None (the caller asks for one)."""
    files = sorted(glob.glob(osp.join(folder, '*.yml')))
    models = []
    for path in files:
        try:
            with open(path) as f:
                opt = yaml.safe_load(f) or {}
            models.append(tuple(repr(opt.get(key)) for key in ('scale', 'network_g', 'network_encoder', 'diffusion')))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            models.append(path)  # unreadable: never equal to another
    return files[0] if files and len(set(models)) == 1 else None


def model_file(path, option):
    if not osp.isfile(path):
        raise WeightsError(f'{option}: no such file: {path}')
    return path


_PARSED = {}  # (path, mtime_ns, size) -> the parsed options


def read_model_options(options_file):
    """The options of a trained model (a YAML mapping with ``network_g`` and ``network_encoder``; ``scale`` taken
    from network_g when not at the top level), as a fresh copy: the file is parsed once per process and version
    (a distillation's run check, its model and its teacher's pipeline all read the teacher's)."""
    try:
        stat = os.stat(options_file)
        key = (osp.abspath(options_file), stat.st_mtime_ns, stat.st_size)
        if key not in _PARSED:
            with open(options_file) as f:
                _PARSED[key] = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise OptionsError(f'{options_file}: not a readable options file ({error})') from None
    opt = copy.deepcopy(_PARSED[key])
    missing = [section for section in ('network_g', 'network_encoder') if not isinstance(opt, dict) or section not in opt]
    if missing:
        raise OptionsError(f'{options_file}: no {" or ".join(missing)} section')
    opt.setdefault('scale', opt['network_g'].get('scale'))
    return opt
