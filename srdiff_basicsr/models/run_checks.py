"""The options BasicSR's train/test loops read for any model, checked as soon as they are parsed, before any folder,
dataset or network is made: the run's name, registries, devices, dataset sizes (and the first HR/LR pair on disk),
loggers and metrics; an SRDiff-family model's own options through ``models.options``."""
import difflib
import os
import re
from os import path as osp

import torch
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from srdiff_basicsr.data.degradation import check_degradation
from srdiff_basicsr.errors import OptionsError, is_int, is_number, require
from srdiff_basicsr.files import is_image_name
from srdiff_basicsr.models.accumulation import check_accumulation
from srdiff_basicsr.models.degraded_training import DegradedTraining
from srdiff_basicsr.models.objectives import MOVED
from srdiff_basicsr.archs.arch_options import check_arch_options


def check_run_options(opt):
    """The options BasicSR's train/test loops read before any model exists, checked as soon as they are parsed
    (for any model); an SRDiffModel's own options too (``check_options``), so that no folder, dataset or
    network is made for a run that cannot work."""
    name = opt.get('name')
    require(name, lambda v: isinstance(v, str) and v not in ('', '.', '..') and not re.search(r'[/\\]', v),
            'name', 'a plain folder name (it becomes experiments/<name> or results/<name>)')
    _check_registered(opt)
    num_gpu = opt.get('num_gpu', 0)
    require(num_gpu, lambda v: v == 'auto' or (is_int(v) and v >= 0), 'num_gpu', "an integer >= 0 or 'auto'")
    if is_int(num_gpu) and num_gpu > 0 and not torch.cuda.is_available():
        raise OptionsError(f'num_gpu: {num_gpu}, but this machine has no CUDA GPU; set num_gpu: 0 to run on the CPU')
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        if name.startswith('train'):
            for key, lowest in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0), ('dataset_enlarge_ratio', 1)):
                require(dataset_opt.get(key, lowest), lambda v: is_int(v) and v >= lowest, f'datasets.{name}.{key}',
                        f'an integer >= {lowest}')
        check_first_pair(name, dataset_opt, opt.get('scale'))
    if opt.get('is_train'):
        train_opt = opt.get('train') or {}
        require(train_opt.get('total_iter'), lambda v: is_number(v) and v >= 1, 'train.total_iter', 'a number >= 1')
        logger_opt = opt.get('logger') or {}
        for key in ('print_freq', 'save_checkpoint_freq'):
            require(logger_opt.get(key, 1), lambda v: is_number(v) and v > 0, f'logger.{key}', 'a number > 0')
        if opt.get('val') and 'val_freq' in opt['val']:
            require(opt['val']['val_freq'], lambda v: is_number(v) and v > 0, 'val.val_freq', 'a number > 0')
    for section in [key for key in opt if key.startswith('network_')]:
        check_arch_options(section, opt[section], ARCH_REGISTRY)
    for name, metric_opt in ((opt.get('val') or {}).get('metrics') or {}).items():
        metric_type = (metric_opt or {}).get('type')
        if metric_type not in METRIC_REGISTRY:
            raise OptionsError(f'val.metrics.{name}.type: no metric named {metric_type!r} is registered; known: '
                               f'{sorted(name for name, _ in METRIC_REGISTRY)}')
    check_degradation(opt, _has_degradation_stage(opt.get('model_type')))
    model = MODEL_REGISTRY.get(opt['model_type'])
    check_accumulation(opt, model)
    if hasattr(model, 'check_run_options'):  # a model of the plugin: its own options, as it will read them
        model.check_run_options(opt)


PAIRED_DATASETS = ('PairedImageDataset', 'CheckedPairedImageDataset')


def check_first_pair(name, dataset_opt, scale):
    """The first HR/LR pair of a paired dataset on disk, read for its sizes only (image headers), before
    anything is made: HR = scale x LR, and a training ``gt_size`` that is a multiple of the scale and fits.
    The dataset checks every pair when it is built."""
    if dataset_opt.get('type') not in PAIRED_DATASETS or not is_int(scale):
        return
    where = f'datasets.{name}'
    if name.startswith('train'):
        gt_size = require(dataset_opt.get('gt_size'), lambda v: is_int(v) and v >= scale and v % scale == 0,
                          f'{where}.gt_size', f'an integer multiple of the scale {scale} (the HR crop side)')
    if (dataset_opt.get('io_backend') or {}).get('type', 'disk') != 'disk':
        return
    gt_dir, lq_dir = dataset_opt.get('dataroot_gt'), dataset_opt.get('dataroot_lq')
    if not (isinstance(gt_dir, str) and isinstance(lq_dir, str) and osp.isdir(gt_dir) and osp.isdir(lq_dir)):
        return  # the dataset names what is missing
    pair = _first_pair(gt_dir, lq_dir)
    if pair is None:
        return
    from PIL import Image
    try:
        (hr_w, hr_h), (lr_w, lr_h) = (Image.open(path).size for path in pair)
    except OSError:
        return  # unreadable: the dataset's own check names it
    if (hr_h, hr_w) != (lr_h * scale, lr_w * scale):
        ratio = f'; they look like x{hr_w // lr_w} data' if lr_w and hr_w % lr_w == 0 and hr_w // lr_w != scale else ''
        raise OptionsError(f'{where}: {pair[0]} is {hr_w}x{hr_h} and {pair[1]} is {lr_w}x{lr_h}: not scale {scale} '
                           f'(dataroot_gt / dataroot_lq, or the top-level scale){ratio}')
    if name.startswith('train') and gt_size > min(hr_h, hr_w):
        raise OptionsError(f'{where}.gt_size: {gt_size} is larger than {pair[0]} ({hr_w}x{hr_h})')


def _first_pair(gt_dir, lq_dir):
    names = sorted(n for n in os.listdir(gt_dir) if is_image_name(n))
    if not names:
        return None
    stem = osp.splitext(names[0])[0]
    for candidate in sorted(os.listdir(lq_dir)):
        if osp.splitext(candidate)[0] == stem:
            return osp.join(gt_dir, names[0]), osp.join(lq_dir, candidate)
    return None


# what BasicSR 1.4.2's BaseModel builds (get_optimizer, setup_schedulers), for its models and ours
BASICSR_OPTIMIZERS, BASICSR_SCHEDULERS = ('Adam', ), ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
BASE_MODELS = ('SRModel', 'DegradedSRModel', 'SRDiffModel')


def _has_degradation_stage(model_type):
    return model_type in MODEL_REGISTRY and issubclass(MODEL_REGISTRY.get(model_type), DegradedTraining)


def _known(kind, value, known, where):
    if value not in known:
        close = difflib.get_close_matches(str(value), known, n=1)
        hint = f'; did you mean {close[0]!r}?' if close else f'; known: {sorted(known)}'
        raise OptionsError(f'{where}: no {kind} named {value!r}{hint}')


def _check_registered(opt):
    """Names BasicSR looks up in its registries only when it builds the model (a KeyError there)."""
    if opt.get('model_type') == 'SRDiffDistillModel':
        raise OptionsError(f'model_type: SRDiffDistillModel is gone; {MOVED["distill"]}')
    _known('model', opt.get('model_type'), [name for name, _ in MODEL_REGISTRY], 'model_type')
    train_opt = opt.get('train') or {} if opt.get('is_train') else {}
    losses = [name for name, _ in LOSS_REGISTRY]
    for key, loss_opt in train_opt.items():
        if key.endswith('_opt') and isinstance(loss_opt, dict) and 'type' in loss_opt:
            _known('loss', loss_opt['type'], losses, f'train.{key}.type')
    if opt.get('model_type') in (*BASE_MODELS, 'CFWModel'):
        for key in ('optim_g', 'optim_encoder', 'optim_d'):
            if isinstance(train_opt.get(key), dict):
                _known('optimizer', train_opt[key].get('type'), BASICSR_OPTIMIZERS, f'train.{key}.type')
        if isinstance(train_opt.get('scheduler'), dict):
            _known('scheduler', train_opt['scheduler'].get('type'), BASICSR_SCHEDULERS, 'train.scheduler.type')
