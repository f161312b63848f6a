"""Tiny SRDiff, ECDP and an encoder trained on RealESRGANDataset with the degradation stage through BasicSR's own
entry points on the CPU: the pool is in the training state, a killed run resumes bit-exactly, the model tests on a
degraded held-out set made by scripts/degrade_images.py. (A RealESRGANDataset without `degradation` is one line:
tests/test_bad_inputs.py.)"""
import re
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from srdiff_basicsr.data.degraded_test_set import degrade_folder
from srdiff_basicsr.errors import OptionsError
from tests.conftest import REPO, TINY_ENCODER, photo_crops, save_basicsr_weights, srdiff_options, write_options
from tests.test_realesrgan_degradation import DATASET
from tests.test_stablesr_training import assert_killed_run_resumes_exactly, run

ECDP = dict(diffusion={'schedule': 'vp', 'timesteps': 10, 'parametrization': 'hybrid', 'res_rescale': 2.5,
                       'clip_x0': False})
DEGRADATION = dict(type='realesrgan', degrade_size=80, gt_size=16, queue_size=4)


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """400-px photograph crops for RealESRGANDataset (no padding), their meta_info, a tiny random encoder and a
    degraded held-out set of two 64-px crops."""
    from basicsr.archs import build_network

    import srdiff_basicsr.plugin  # noqa: F401
    root = tmp_path_factory.mktemp('realesrgan')
    hr_dir = root / 'hr400'
    hr_dir.mkdir()
    for i, crop in enumerate(photo_crops(3, 400, seed=1)):
        cv2.imwrite(str(hr_dir / f'{i}.png'), crop[..., ::-1])
    (root / 'meta_info.txt').write_text(''.join(f'{i}.png\n' for i in range(3)))
    held_out = root / 'held_out'
    held_out.mkdir()
    for i, crop in enumerate(photo_crops(2, 96, seed=2)):
        cv2.imwrite(str(held_out / f'{i}.png'), crop[..., ::-1])
    torch.manual_seed(0)
    encoder = save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), root / 'encoder.pth')
    return root, hr_dir, encoder


def options(project, name, model='srdiff'):
    root, hr_dir, encoder = project
    opt = srdiff_options(name, None, None, encoder, total_iter=4, timesteps=10)
    opt['datasets']['train'] = dict(DATASET, dataroot_gt=str(hr_dir), meta_info=str(hr_dir.parent / 'meta_info.txt'),
                                    num_worker_per_gpu=0, dataset_enlarge_ratio=2, phase='train', scale=4)
    degraded = hr_dir.parent / 'degraded'
    opt['datasets']['val'].update(dataroot_gt=str(degraded / 'HR'), dataroot_lq=str(degraded / 'LR'))
    opt['degradation'] = dict(DEGRADATION)
    opt['val']['val_freq'] = 4
    if model == 'ecdp':
        opt.update(ECDP)
        opt['network_g']['num_out_ch'] = 6
    return write_options(root / f'{name}.yml', opt)


def test_degrade_images_writes_a_seeded_paired_set_and_a_rerun_keeps_it(project):
    root = project[0]
    args = ['scripts/degrade_images.py', '-opt', options(project, 'degrade'), '--hr', str(root / 'held_out'),
            '-o', str(root / 'degraded'), '--seed', '3']
    result = run(project, *[str(REPO / args[0]), *args[1:]])
    assert result.returncode == 0 and '2 pair(s) written' in result.stdout, result.stderr[-2000:]
    lr = cv2.imread(str(root / 'degraded' / 'LR' / '0.png'))
    assert lr.shape == (24, 24, 3)
    assert torch.equal(torch.from_numpy(cv2.imread(str(root / 'degraded' / 'HR' / '0.png'))),
                       torch.from_numpy(cv2.imread(str(root / 'held_out' / '0.png'))))
    opt = yaml.safe_load(Path(args[2]).read_text())
    assert degrade_folder(str(root / 'held_out'), str(root / 'degraded'), opt, seed=3) == 0  # a rerun keeps them
    assert degrade_folder(str(root / 'held_out'), str(root / 'other_seed'), opt, seed=4) == 2
    assert not (cv2.imread(str(root / 'other_seed' / 'LR' / '0.png')) == lr).all()
    assert degrade_folder(str(root / 'held_out'), str(root / 'same_seed'), opt, seed=3) == 2
    assert (cv2.imread(str(root / 'same_seed' / 'LR' / '0.png')) == lr).all()
    with pytest.raises(OptionsError, match="degradation: must be a mapping with type one of \\['realesrgan'\\]"):
        degrade_folder(str(root / 'held_out'), str(root / 'unknown'), {**opt, 'degradation': {'type': 'bsrgan'}})


@pytest.mark.parametrize('model', ['srdiff', 'ecdp'])
def test_a_tiny_model_trains_on_realesrgan_dataset_validates_resumes_exactly_and_tests(project, model):
    root = project[0]
    if not (root / 'degraded' / 'LR').exists():
        test_degrade_images_writes_a_seeded_paired_set_and_a_rerun_keeps_it(project)
    # the two runs of assert_killed_run_resumes_exactly are named 'whole' and 'killed' in their own folder
    project = (root / model, *project[1:])
    project[0].mkdir()
    whole = run(project, '-m', 'basicsr.train', '-opt', options(project, 'whole', model))  # the stock entry
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert re.search(r'# psnr: [\d.]+', whole.stderr)  # validated on the degraded held-out pairs
    state = torch.load(project[0] / 'experiments' / 'whole' / 'training_states' / '2.state', weights_only=True)
    pool = state['degradation']['pool']
    assert pool['filled'] == 4 and pool['lq'].shape == (4, 3, 4, 4) and pool['gt'].shape == (4, 3, 16, 16)
    assert pool['lq'].abs().sum() > 0  # the two batches before the save are in it
    # killed as iteration 3 starts (the first to draw from the full pool), resumed from the state of 2
    assert_killed_run_resumes_exactly(project, options(project, 'killed', model), ('net_g', ))

    if model == 'ecdp':  # validation sampled it above; basicsr.test of an ECDP: tests/test_pipeline.py
        return
    models = project[0] / 'experiments' / 'whole' / 'models'
    test_opt = srdiff_options(f'{model}_test', str(root / 'degraded' / 'LR'), str(root / 'degraded' / 'HR'), None,
                              is_train=False, timesteps=10)
    test_opt['path'] = dict(pretrain_network_g=str(models / 'net_g_latest.pth'),
                            pretrain_network_encoder=str(models / 'net_encoder_latest.pth'))
    test_opt['val']['metrics']['lr_psnr'] = dict(type='calculate_lr_psnr', scale=4, lr_from_hr=True)
    tested = run(project, '-m', 'basicsr.test', '-opt', write_options(project[0] / 'test.yml', test_opt))
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert len(list((project[0] / 'results' / f'{model}_test' / 'visualization' / 'tiny_test').glob('*.png'))) == 2
    assert re.search(r'# lr_psnr: [\d.]+', tested.stderr)


def test_an_encoder_pretrains_on_the_degradations_with_degraded_sr_model(project):
    root, hr_dir, _ = project
    opt = dict(name='encoder', model_type='DegradedSRModel', scale=4, num_gpu=0, manual_seed=0,
               degradation=dict(DEGRADATION),
               datasets=dict(train=dict(DATASET, dataroot_gt=str(hr_dir), meta_info=str(root / 'meta_info.txt'),
                                        num_worker_per_gpu=0, dataset_enlarge_ratio=2)),
               network_g=dict(TINY_ENCODER, scale=4), path=dict(pretrain_network_g=None, resume_state=None),
               train=dict(optim_g=dict(type='Adam', lr=1e-3), total_iter=3, warmup_iter=-1,
                          scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5),
                          pixel_opt=dict(type='L1Loss', loss_weight=1.0)),
               logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False))
    result = run(project, '-m', 'basicsr.train', '-opt', write_options(root / 'encoder.yml', opt))
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'iter:\s+3, .*l_pix: [\d.e+-]+', result.stderr)
    state = torch.load(root / 'experiments' / 'encoder' / 'training_states' / '2.state', weights_only=True)
    assert state['degradation']['pool']['filled'] == 4
    first, last = (torch.load(root / 'experiments' / 'encoder' / 'models' / f'net_g_{i}.pth', weights_only=True)
                   for i in (2, 'latest'))
    assert not torch.equal(first['params']['conv_first.weight'], last['params']['conv_first.weight'])
