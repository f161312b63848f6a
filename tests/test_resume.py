"""A run killed with SIGKILL (between steps, while writing a network, while writing the training state) and
resumed with --auto_resume ends with the very weights of the run that was never interrupted."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, differing_tensors, srdiff_options, tiny_data_and_encoder, write_options

TORCHRUN = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']
KILLS = [  # where rank 0 dies, the temporary file it leaves, the iteration the next run resumes from
    ('iteration:5', None, 4),  # mid-epoch, after the validation that follows the save at 4
    ('save:8.state', '8.state.tmp', 6),  # net_*_8.pth written, the state half-written; 6 ends an epoch
    ('save:net_g_10', 'net_g_10.pth.tmp', 8),  # the network half-written
]


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    return (root, *tiny_data_and_encoder(root, hr_size=32, count=4))


def training_options(project, name, workers):
    root, lr_dir, hr_dir, encoder = project
    opt = srdiff_options(name, lr_dir, hr_dir, encoder, total_iter=12, timesteps=10)  # validation: 10 DDPM steps
    # 12 samples an epoch: 6 batches for one process, 3 for each of two; checkpoints land mid-epoch and at its end
    opt['datasets']['train'].update(dataset_enlarge_ratio=3, num_worker_per_gpu=workers)
    opt['datasets']['val']['dataroot_gt'] = hr_dir
    opt['train']['ema_decay'] = 0.9
    opt['val'].update(val_freq=4, seed=None)  # validation right after saving, drawing from the global RNG
    opt['logger']['save_checkpoint_freq'] = 2
    return write_options(root / f'{name}.yml', opt)


def train(project, opt_file, launcher, *args, kill=None):
    entry = ['-m', 'tests.killed_training', kill] if kill else ['-m', 'srdiff_basicsr.train']
    command = [*TORCHRUN, *entry, '--launcher', 'pytorch'] if launcher == 'torchrun' else entry
    return subprocess.run([sys.executable, *command, '-opt', opt_file, *args], cwd=project[0], capture_output=True,
                          text=True, timeout=300, env={**os.environ, 'PYTHONPATH': str(REPO)})


def final_weights(project, name):
    return torch.load(project[0] / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)


@pytest.mark.parametrize('launcher, workers', [('none', 2), ('torchrun', 0)], ids=['1 process', '2 processes'])
def test_killed_and_resumed_run_ends_with_the_uninterrupted_run_weights(project, launcher, workers):
    uninterrupted = training_options(project, f'whole_{launcher}', workers)
    result = train(project, uninterrupted, launcher)
    assert result.returncode == 0, result.stderr[-3000:]

    name = f'killed_{launcher}'
    opt_file = training_options(project, name, workers)
    experiment = project[0] / 'experiments' / name
    resumed_from = None
    for kill, left, next_resumed_from in KILLS:
        result = train(project, opt_file, launcher, *(['--auto_resume'] if resumed_from else []), kill=kill)
        assert result.returncode == (1 if launcher == 'torchrun' else -signal.SIGKILL), result.stderr[-3000:]
        if resumed_from:
            assert re.search(rf'Resuming training from epoch: \d+, iter: {resumed_from}\.', result.stderr)
        # the atomic writer's temporary name: .<name>.<random>.tmp
        assert [re.sub(r'^\.(.+)\.\w+\.tmp$', r'\1.tmp', p.name) for p in experiment.rglob('*.tmp')] == \
            ([left] if left else [])
        resumed_from = next_resumed_from
    result = train(project, opt_file, launcher, '--auto_resume')
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(rf'Resuming training from epoch: \d+, iter: {resumed_from}\.', result.stderr)
    assert not list(experiment.rglob('*.tmp'))

    expected, got = final_weights(project, f'whole_{launcher}'), final_weights(project, name)
    assert set(got) == {'params', 'params_ema'}
    for key in got:
        differing = differing_tensors(expected[key], got[key])
        assert differing == [], f'{key}: {len(differing)} tensors differ'


def test_a_resumed_joint_training_continues_the_trained_encoder(project):
    """train.optim_encoder: the encoder's weights, its EMA and its optimizer go through the kill as the U-Net's."""
    import yaml
    names = ('joint_whole', 'joint_killed')
    for name in names:
        opt = yaml.safe_load(Path(training_options(project, name, workers=0)).read_text())
        opt['train'].update(optim_encoder={'type': 'Adam', 'lr': 1e-3}, total_iter=6)
        write_options(project[0] / f'{name}.yml', opt)
    assert train(project, str(project[0] / 'joint_whole.yml'), 'none').returncode == 0
    opt_file = str(project[0] / 'joint_killed.yml')
    assert train(project, opt_file, 'none', kill='iteration:5').returncode == -signal.SIGKILL
    result = train(project, opt_file, 'none', '--auto_resume')
    assert result.returncode == 0 and re.search(r'Resuming training from epoch: \d+, iter: 4\.', result.stderr)

    initial = torch.load(project[3], weights_only=True)['params']
    for net in ('net_g', 'net_encoder'):
        expected, got = (torch.load(project[0] / 'experiments' / name / 'models' / f'{net}_latest.pth',
                                    weights_only=True) for name in names)
        assert set(got) == {'params', 'params_ema'}
        for key in got:
            assert differing_tensors(expected[key], got[key]) == [], (net, key)
    assert any(not torch.equal(initial[k], v) for k, v in got['params'].items())  # the encoder did train
