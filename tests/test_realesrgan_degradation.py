"""Real-ESRGAN's degradations on the batch: the stage against BasicSR's functions called in Real-ESRGAN's published
order and against BasicSR's own RealESRNetModel, the two upstream faults fixed, and the option checks."""
import random

import numpy as np
import pytest
import torch
from basicsr.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt
from basicsr.utils import DiffJPEG, USMSharp, img_process_util, set_random_seed
from torch.nn import functional as F

import srdiff_basicsr.models  # noqa: F401  (registration, compat)
from srdiff_basicsr.data.degradation import check_degradation
from srdiff_basicsr.data.realesrgan_degradation import REALESRGAN_DEFAULTS, RealESRGANDegradation
from srdiff_basicsr.errors import OptionsError
from tests.conftest import load_script

CPU = torch.device('cpu')
DATASET = dict(name='train', type='RealESRGANDataset', dataroot_gt='hr', meta_info='meta.txt', io_backend={'type': 'disk'},
               blur_kernel_size=21, kernel_list=['iso', 'aniso'], kernel_prob=[0.5, 0.5], sinc_prob=0.1,
               blur_sigma=[0.2, 3], betag_range=[0.5, 4], betap_range=[1, 2], blur_kernel_size2=21,
               kernel_list2=['iso'], kernel_prob2=[1], sinc_prob2=0.1, blur_sigma2=[0.2, 1.5], betag_range2=[0.5, 4],
               betap_range2=[1, 2], final_sinc_prob=0.8, use_hflip=True, use_rot=False, batch_size_per_gpu=2)


def batches(count, size=96, seed=0):
    """RealESRGANDataset-like batches of 2: HR in [0, 1] and normalised random kernels."""
    gen = torch.Generator().manual_seed(seed)

    def kernel():
        k = torch.rand(2, 21, 21, generator=gen)
        return k / k.sum(dim=(1, 2), keepdim=True)

    return [{'gt': torch.rand(2, 3, size, size, generator=gen), 'kernel1': kernel(), 'kernel2': kernel(),
             'sinc_kernel': kernel()} for _ in range(count)]


def realesrgan_order(hr, kernel1, kernel2, sinc_kernel, scale, o, seen):
    """The LR as Real-ESRGAN's RealESRNetModel.feed_data describes it, step by step with BasicSR's functions;
    ``seen`` collects the random branches taken."""
    jpeg = DiffJPEG(differentiable=False)
    height, width = hr.shape[-2:]
    out = img_process_util.filter2D(hr, kernel1)
    for stage in ('', '2'):
        if stage == '2' and np.random.uniform() < o['second_blur_prob']:
            out = img_process_util.filter2D(out, kernel2)
            seen.add('second blur')
        direction = random.choices(['up', 'down', 'keep'], o[f'resize_prob{stage}'])[0]
        seen.add(f'{direction}{stage}')
        low, high = o[f'resize_range{stage}']
        s = np.random.uniform(1, high) if direction == 'up' else np.random.uniform(low, 1) if direction == 'down' else 1
        mode = random.choice(['area', 'bilinear', 'bicubic'])
        if stage == '':
            out = F.interpolate(out, scale_factor=s, mode=mode)
        else:
            out = F.interpolate(out, size=(int(height / scale * s), int(width / scale * s)), mode=mode)
        if np.random.uniform() < o[f'gaussian_noise_prob{stage}']:
            seen.add('gaussian')
            out = random_add_gaussian_noise_pt(out, sigma_range=o[f'noise_range{stage}'], clip=True, rounds=False,
                                               gray_prob=o[f'gray_noise_prob{stage}'])
        else:
            seen.add('poisson')
            out = random_add_poisson_noise_pt(out, scale_range=o[f'poisson_scale_range{stage}'],
                                              gray_prob=o[f'gray_noise_prob{stage}'], clip=True, rounds=False)
        if stage == '':
            quality = out.new_zeros(out.size(0)).uniform_(*o['jpeg_range'])
            out = jpeg(torch.clamp(out, 0, 1), quality=quality)

    def back_and_sinc(x):
        mode = random.choice(['area', 'bilinear', 'bicubic'])
        return img_process_util.filter2D(F.interpolate(x, size=(height // scale, width // scale), mode=mode),
                                         sinc_kernel)

    def compress(x):
        return jpeg(torch.clamp(x, 0, 1), quality=x.new_zeros(x.size(0)).uniform_(*o['jpeg_range2']))

    if np.random.uniform() < 0.5:
        seen.add('sinc then JPEG')
        out = compress(back_and_sinc(out))
    else:
        seen.add('JPEG then sinc')
        out = back_and_sinc(compress(out))
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.


def test_the_lr_is_basicsrs_functions_in_realesrgans_order_for_every_branch():
    stage = RealESRGANDegradation({'type': 'realesrgan'}, 4, CPU)
    seen = set()
    for seed, batch in enumerate(batches(12)):
        hr, kernels = batch['gt'], [batch[k] for k in ('kernel1', 'kernel2', 'sinc_kernel')]
        set_random_seed(seed)
        ours = stage.degrade(hr, *kernels)
        set_random_seed(seed)
        expected = realesrgan_order(hr, *kernels, 4, REALESRGAN_DEFAULTS, seen)
        assert ours.shape == (2, 3, 24, 24) and torch.equal(ours, expected), seed
        assert torch.equal(ours, (ours * 255).round() / 255)  # on the 8-bit grid
    assert seen >= {'up', 'down', 'keep', 'up2', 'down2', 'keep2', 'gaussian', 'poisson', 'second blur',
                    'sinc then JPEG', 'JPEG then sinc'}


def test_stage_equals_basicsrs_realesrnet_model_crops_and_pool_included_and_that_model_runs_on_the_cpu(tmp_path):
    """BasicSR's own RealESRNetModel (built on the CPU thanks to compat) makes the same training pairs, through its
    pool: 4 batches of 2 into a pool of 4, the last two drawn from the shuffled pool."""
    degradation = dict(gt_size=32, queue_size=4)
    stock = load_script('benchmark_degradation.py').realesrnet_model(degradation, CPU, str(tmp_path))
    stage = RealESRGANDegradation({'type': 'realesrgan', **degradation}, 4, CPU)
    data = batches(4)
    set_random_seed(3)
    ours = [stage(batch) for batch in data]
    set_random_seed(3)
    for i, (batch, (lq, gt)) in enumerate(zip(data, ours)):
        stock.feed_data(batch)
        assert lq.shape == (2, 3, 8, 8) and gt.shape == (2, 3, 32, 32)
        assert torch.equal(stock.lq, lq) and torch.equal(stock.gt, gt), i
    # the exchanged batches differ from what their own step degraded (pairs of earlier batches came out)
    set_random_seed(3)
    unpooled = RealESRGANDegradation({'type': 'realesrgan', 'gt_size': 32, 'queue_size': 100}, 4, CPU)
    assert not torch.equal([unpooled(batch) for batch in data][3][1], ours[3][1])


def test_the_sharpened_hr_is_degraded_and_trained_on_with_gt_usm():
    batch = batches(1)[0]
    for gt_usm in (True, False):
        stage = RealESRGANDegradation({'type': 'realesrgan', 'gt_usm': gt_usm, 'gt_size': 96}, 4, CPU)
        set_random_seed(0)
        _, gt = stage(batch)
        assert torch.equal(gt, USMSharp()(batch['gt']) if gt_usm else batch['gt'])


def test_degrade_size_degrades_one_random_crop_of_the_batch():
    batch = batches(1)[0]
    cropped = RealESRGANDegradation({'type': 'realesrgan', 'degrade_size': 80, 'gt_size': 80, 'gt_usm': False}, 4, CPU)
    whole = RealESRGANDegradation({'type': 'realesrgan', 'gt_size': 80, 'gt_usm': False}, 4, CPU)
    set_random_seed(1)
    lq, gt = cropped(batch)
    set_random_seed(1)
    top, left = random.randint(0, 16), random.randint(0, 16)
    expected = whole({**batch, 'gt': batch['gt'][..., top:top + 80, left:left + 80]})
    assert (top, left) != (0, 0) and lq.shape == (2, 3, 20, 20)
    assert torch.equal(lq, expected[0]) and torch.equal(gt, expected[1])


def test_filter2d_works_on_diffjpegs_output():
    """DiffJPEG returns a channels-last crop; BasicSR's filter2D (view) failed on it for batches of 2 or more."""
    x = torch.rand(2, 3, 40, 40)
    compressed = DiffJPEG(differentiable=False)(x, quality=torch.tensor([50., 80.]))
    assert not compressed.is_contiguous()
    kernel = torch.rand(2, 21, 21)
    with pytest.raises(RuntimeError, match='view size is not compatible'):
        img_process_util.filter2D.__wrapped__(compressed, kernel)
    padded = F.pad(compressed, (10, 10, 10, 10), mode='reflect')
    expected = torch.cat([F.conv2d(padded[i:i + 1].transpose(0, 1), kernel[i][None, None]).transpose(0, 1)
                          for i in range(2)])  # each image's channels with its own kernel, by conv2d directly
    torch.testing.assert_close(img_process_util.filter2D(compressed, kernel), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True)
def meta_info_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'meta.txt').write_text('0.png\n')


def run_options(**changes):
    opt = dict(name='x', model_type='SRDiffModel', scale=4, is_train=True,
               datasets=dict(train=dict(DATASET), val=dict(name='val', type='CheckedPairedImageDataset')),
               degradation=dict(type='realesrgan', gt_size=32, queue_size=4))
    for key, value in changes.items():
        section, _, name = key.rpartition('__')
        target = opt
        for part in section.split('__') if section else []:
            target = target[part]
        if value is None:
            target.pop(name)
        else:
            target[name] = value
    return opt


@pytest.mark.parametrize('changes, stage, message', [
    (dict(degradation=None), True, "datasets.train.type: RealESRGANDataset gives HR crops and blur kernels but no LR "
     "('lq'); add `degradation: {type: realesrgan}` to the options"),
    (dict(degradation=None, model_type='SRModel'), False, 'and model_type SRModel has no degradation stage: use '
     'DegradedSRModel'),
    (dict(model_type='CFWModel'), False, 'degradation: model_type CFWModel has no degradation stage'),
    (dict(datasets__train__type='CheckedPairedImageDataset'), True, 'datasets.train.type CheckedPairedImageDataset '
     'gives its own LR, which would be ignored'),
    (dict(datasets__val__type='RealESRGANDataset'), True, 'datasets.val.type: RealESRGANDataset gives HR crops and '
     'blur kernels but no LR, and validation and tests need fixed LR images'),
    (dict(degradation__type='bsrgan'), True, "degradation: must be a mapping with type one of ['realesrgan']"),
    (dict(degradation__resize_prob=[0.2, 0.8]), True, 'degradation.resize_prob: must be three weights >= 0'),
    (dict(degradation__gaussian_noise_prob2=1.5), True, 'degradation.gaussian_noise_prob2: must be a probability'),
    (dict(degradation__second_blur_prob=-0.1), True, 'degradation.second_blur_prob: must be a probability'),
    (dict(degradation__resize_range=[1.2, 1.5]), True, 'degradation.resize_range: must be [low, high] with 0 < low'),
    (dict(degradation__jpeg_range2=[0, 95]), True, 'degradation.jpeg_range2: must be [low, high] JPEG qualities'),
    (dict(degradation__gt_size=30), True, 'degradation.gt_size: must be a multiple of the scale (4) up to 400'),
    (dict(degradation__degrade_size=64), True, 'degradation.degrade_size: must be ~ or a multiple of the scale (4) '
     'from 80 to 400'),
    (dict(degradation__degrade_size=96, degradation__gt_size=128), True, 'degradation.gt_size: must be a multiple of '
     'the scale (4) up to 96'),
    (dict(degradation__queue_size=5), True, 'degradation.queue_size: must be a multiple of the batch size (2)'),
    (dict(degradation__noise_range3=[1, 2]), True, "degradation: unknown option(s) ['noise_range3']"),
    (dict(datasets__train__blur_kernel_size=15), True, 'datasets.train.blur_kernel_size: must be 21'),
    (dict(datasets__train__kernel_prob=[1.0]), True, 'datasets.train.kernel_prob: must be 2 weights >= 0'),
    (dict(datasets__train__kernel_list2=['box']), True, 'datasets.train.kernel_list2: must be a list of kernel types'),
    (dict(datasets__train__sinc_prob2=2), True, 'datasets.train.sinc_prob2: must be a probability in [0, 1]'),
    (dict(datasets__train__final_sinc_prob=None), True, "datasets.train: RealESRGANDataset needs ['final_sinc_prob']"),
    (dict(datasets__train__blur_sigma=[0, 3]), True, 'datasets.train.blur_sigma: must be [low, high] with 0 < low'),
    (dict(datasets__train__meta_info=None), True, 'datasets.train.meta_info: missing; RealESRGANDataset reads its '
     'image list'),
    (dict(datasets__train__meta_info='nowhere.txt'), True, 'datasets.train.meta_info: no file nowhere.txt'),
])
def test_a_run_whose_dataset_model_and_degradation_do_not_fit_is_named(changes, stage, message):
    with pytest.raises(OptionsError) as error:
        check_degradation(run_options(**changes), stage)
    assert message in str(error.value)


def test_realesrgans_options_pass():
    check_degradation(run_options(), True)
    check_degradation(run_options(degradation={'type': 'realesrgan', **REALESRGAN_DEFAULTS},
                                  datasets__train__batch_size_per_gpu=12), True)


def test_the_degradation_benchmark_times_both_stages_on_the_same_batches(tmp_path):
    rows = load_script('benchmark_degradation.py').main(['--device', 'cpu', '--batch', '2', '--sizes', '96',
                                                         '--repeats', '1', '--out', str(tmp_path / 'report')])
    assert [(size, usm) for size, usm, _, _ in rows] == [(96, True), (96, False)]
    assert all(ours > 0 and theirs > 0 for _, _, ours, theirs in rows)
    report = (tmp_path / 'report' / 'report.md').read_text()
    assert report.count('| 96 |') == 2 and 'RealESRNetModel s / batch' in report
