"""A model on disk, described by one manifest, ``model.yml``: the options of each section (``scale``, every
``network_*``, ``diffusion``), one weight file per network with the key it is stored under, and the model's own
sampler. ``SRDiffPipeline.save_pretrained``, the checkpoint converters and every checkpoint of a training run write
it; ``SRDiffPipeline.from_pretrained`` reads it (folders older than the manifest: ``model_files.legacy_manifest``).
"""
import os
from dataclasses import dataclass
from os import path as osp

import yaml

from srdiff_basicsr.errors import OptionsError, WeightsError
from srdiff_basicsr.files import atomic_write

MANIFEST = 'model.yml'
FORMAT = 'srdiff-basicsr model 1'


@dataclass
class Manifest:
    options: dict  # scale, the network_* sections, diffusion
    weights: dict  # network section -> (weight file, param_key)
    sampler: dict = None  # the model's own sampler options (None: the paper's DDPM)
    source: str = ''  # where it was read, for messages


def write_manifest(folder, options, weights, sampler=None):
    """``folder/model.yml`` (atomically): ``options`` ({scale, network_*, diffusion}), ``weights`` ({section: (file,
    param_key)}, files inside ``folder`` written relative to it) and ``sampler``."""
    def relative(file):
        inside = osp.abspath(file).startswith(osp.abspath(folder) + os.sep)
        return osp.relpath(file, folder) if inside else osp.abspath(file)

    document = {'format': FORMAT, **options, 'sampler': sampler,
                'weights': {section: {'file': relative(file), 'param_key': key}
                            for section, (file, key) in weights.items()}}
    path = osp.join(folder, MANIFEST)
    with atomic_write(path) as tmp, open(tmp, 'w') as f:
        yaml.safe_dump(document, f, sort_keys=False, default_flow_style=None)
    return path


def manifest_path(model):
    """The manifest of ``model`` (a folder holding ``model.yml``, or that file), else None."""
    if osp.isdir(model) and osp.isfile(osp.join(model, MANIFEST)):
        return osp.join(model, MANIFEST)
    return model if osp.isfile(model) and osp.basename(model) == MANIFEST else None


def read_manifest(path):
    """The ``Manifest`` of a ``model.yml``; its weight files resolved beside it and checked to exist."""
    try:
        with open(path) as f:
            document = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise OptionsError(f'{path}: not a readable model manifest ({error})') from None
    if not isinstance(document, dict) or document.get('format') != FORMAT:
        raise OptionsError(f'{path}: not a model manifest of this version (format: {FORMAT!r})')
    folder = osp.dirname(osp.abspath(path))
    weights = {}
    for section, entry in (document.get('weights') or {}).items():
        file = osp.join(folder, entry['file'])
        if not osp.isfile(file):
            raise WeightsError(f'{path}: the weights of {section}, {file}, are missing')
        weights[section] = (file, entry.get('param_key', 'params'))
    options = {key: value for key, value in document.items() if key not in ('format', 'sampler', 'weights')}
    return Manifest(options, weights, document.get('sampler'), path)
