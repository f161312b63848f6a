"""Degradations made on the training batch (``degradation: {type: ...}`` in the options): the table of them, the
datasets that feed them, and the checks that a run's datasets, model and degradation fit together.

A new degradation is a class with ``__call__(batch) -> (lq, gt)``, ``state_dict``/``load_state_dict``, its
``options`` ({name: Option}) and a static ``check_options(section, opt, scale, batch_size)``, and one entry in
``DEGRADATIONS``."""
from os import path as osp

from srdiff_basicsr.data.realesrgan_degradation import RealESRGANDegradation
from srdiff_basicsr.errors import OptionsError, is_number, is_probability, require

DEGRADATIONS = {'realesrgan': RealESRGANDegradation}
# datasets whose batches hold HR crops and what a degradation needs to make the LR, but no LR
HR_ONLY_DATASETS = {'RealESRGANDataset': 'realesrgan'}

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')
REALESRGAN_KERNEL_SIZE = 21  # RealESRGANDataset draws sizes 7..21 and pads every kernel to 21, whatever it is told


def build_degradation(opt, scale, device):
    """The degradation of the ``degradation`` options (None without them), on ``device``."""
    return None if not opt else degradation_class(opt)(opt, scale, device)


def degradation_class(degradation):
    """The class of the ``degradation`` options, or an OptionsError naming the known types."""
    require(degradation, lambda v: isinstance(v, dict) and v.get('type') in DEGRADATIONS, 'degradation',
            f'a mapping with type one of {sorted(DEGRADATIONS)}')
    return DEGRADATIONS[degradation['type']]


def check_degradation(opt, model_has_stage):
    """The run's datasets, model and ``degradation`` fit: a dataset without LR only with a degradation (and only
    for training), a degradation only with such a dataset and a model that has the stage, each option in range."""
    degradation = opt.get('degradation')
    model_type = opt.get('model_type')
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        dataset_type = dataset_opt.get('type')
        training = name.startswith('train') and opt.get('is_train')
        if dataset_type in HR_ONLY_DATASETS:
            if not training:
                raise OptionsError(f'datasets.{name}.type: {dataset_type} gives HR crops and blur kernels but no LR, '
                                   'and validation and tests need fixed LR images: make them once with '
                                   'scripts/degrade_images.py (the same degradations, seeded) and read them with '
                                   'CheckedPairedImageDataset')
            if not degradation:
                remedy = ('add `degradation: {type: ' + HR_ONLY_DATASETS[dataset_type] + '}` to the options (the LR '
                          'made on the fly from them, on the model\'s device)') if model_has_stage else (
                    f'and model_type {model_type} has no degradation stage: use DegradedSRModel (BasicSR\'s SRModel '
                    'with one) or a model of this plugin, with `degradation: {type: ' +
                    HR_ONLY_DATASETS[dataset_type] + '}`')
                raise OptionsError(f"datasets.{name}.type: {dataset_type} gives HR crops and blur kernels but no LR "
                                   f"('lq'); {remedy}")
            check_realesrgan_dataset(name, dataset_opt)
        elif training and degradation:
            raise OptionsError(f'degradation: makes the LR from the HR crops and kernels of '
                               f'{sorted(HR_ONLY_DATASETS)}, but datasets.{name}.type {dataset_type} gives its own LR, '
                               'which would be ignored; remove `degradation` or train on RealESRGANDataset')
    if not degradation:
        return
    if not model_has_stage:
        raise OptionsError(f'degradation: model_type {model_type} has no degradation stage (the models of this '
                           'plugin and DegradedSRModel have one)')
    stage = degradation_class(degradation)
    if not opt.get('is_train'):
        return
    train_opt = (opt.get('datasets') or {}).get('train') or {}
    stage.check_options('degradation', degradation, opt.get('scale'), train_opt.get('batch_size_per_gpu', 1))


def check_realesrgan_dataset(name, dataset_opt):
    """RealESRGANDataset's kernel options: each present (the dataset reads them all) and in range."""
    section = f'datasets.{name}'
    required = [f'{key}{order}' for order in ('', '2') for key in (
        'blur_kernel_size', 'kernel_list', 'kernel_prob', 'blur_sigma', 'betag_range', 'betap_range', 'sinc_prob')]
    missing = [key for key in (*required, 'final_sinc_prob', 'use_hflip', 'use_rot') if key not in dataset_opt]
    if missing:
        raise OptionsError(f'{section}: RealESRGANDataset needs {missing} (Real-ESRGAN\'s values are in '
                           'options/train_srdiff_realesrgan_x4.yml)')
    meta_info = dataset_opt.get('meta_info')
    if (dataset_opt.get('io_backend') or {}).get('type') != 'lmdb' and not (meta_info and osp.isfile(meta_info)):
        raise OptionsError(f'{section}.meta_info: {"no file " + str(meta_info) if meta_info else "missing"}; '
                           'RealESRGANDataset reads its image list from a meta_info file (one path relative to '
                           'dataroot_gt per line) on the disk backend')
    for order in ('', '2'):
        require(dataset_opt[f'blur_kernel_size{order}'], lambda v: v == REALESRGAN_KERNEL_SIZE,
                f'{section}.blur_kernel_size{order}', f'{REALESRGAN_KERNEL_SIZE} (BasicSR\'s RealESRGANDataset draws '
                'kernel sizes from 7 to 21 and pads them to 21; another value would be ignored)')
        kinds = require(dataset_opt[f'kernel_list{order}'], lambda v: isinstance(v, (list, tuple)) and v and
                        all(k in KERNEL_TYPES for k in v), f'{section}.kernel_list{order}',
                        f'a list of kernel types from {list(KERNEL_TYPES)}')
        require(dataset_opt[f'kernel_prob{order}'], lambda v: isinstance(v, (list, tuple)) and len(v) == len(kinds) and
                all(is_number(p) and p >= 0 for p in v) and sum(v) > 0, f'{section}.kernel_prob{order}',
                f'{len(kinds)} weights >= 0 (one per kernel_list{order} entry), not all 0')
        for key, low in (('blur_sigma', 0), ('betag_range', 0), ('betap_range', 0)):
            require(dataset_opt[key + order], lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and
                    all(is_number(x) and x > low for x in v) and v[0] <= v[1], f'{section}.{key}{order}',
                    f'[low, high] with {low} < low <= high')
        require(dataset_opt[f'sinc_prob{order}'], is_probability, f'{section}.sinc_prob{order}', 'a probability in [0, 1]')
    require(dataset_opt['final_sinc_prob'], is_probability, f'{section}.final_sinc_prob', 'a probability in [0, 1]')
