"""Two processes on this CPU with gloo, started by torchrun as on a multi-GPU machine."""
import csv
import filecmp
import os
import subprocess
import sys

import pytest
import torch
from basicsr.archs import build_network

from tests.conftest import (REPO, TINY_ENCODER, differing_tensors, make_pairs, run_cli, save_basicsr_weights,
                            srdiff_options, write_options)

TORCHRUN = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    lr_dir, hr_dir = make_pairs(root / 'data', count=5, hr_size=32)  # 5 images: ranks take 3 and 2
    torch.manual_seed(0)
    encoder = save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), root / 'encoder.pth')
    return root, lr_dir, hr_dir, encoder


@pytest.mark.parametrize('mode', ['sync', 'nosync', 'joint'])
def test_training_steps_keep_the_ranks_weights_identical(project, tmp_path, mode):
    root, _, _, encoder = project
    run_cli([*TORCHRUN, '-m', 'tests.distributed_worker', str(tmp_path), encoder, mode], cwd=REPO)
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in range(2)]
    assert ranks[0]['l_noise'] != ranks[1]['l_noise']  # the ranks saw different data

    def differing(key):
        return differing_tensors(ranks[0][key], ranks[1][key])

    if mode == 'nosync':  # the control: without DDP the same steps drift apart
        assert ranks[0]['net_g'] == 'SRDiffUNet' and len(differing('params')) > 10
        return
    assert ranks[0]['net_g'] == 'DistributedDataParallel' and differing('params') == []
    if mode == 'sync':
        assert ranks[0]['net_encoder'] == 'SRDiffRRDBNet'  # frozen: not wrapped for gradient sync
    else:  # trained with the U-Net: wrapped, its gradients synchronised too
        initial = torch.load(encoder, weights_only=True)['params']
        assert ranks[0]['net_encoder'] == 'DistributedDataParallel' and differing('encoder') == []
        assert any(not torch.equal(initial[k], v) for k, v in ranks[0]['encoder'].items())


def test_train_and_test_with_two_processes_equal_one_process(project):
    root, lr_dir, hr_dir, encoder = project
    opt = srdiff_options('dist_train', lr_dir, hr_dir, encoder, total_iter=4)
    opt['val']['val_freq'] = 2  # validation during training runs split across the ranks too
    # BasicSR counts epochs as if the last partial batch were kept (it is dropped): enough batches per epoch
    opt['datasets']['train']['dataset_enlarge_ratio'] = 4
    run_cli([*TORCHRUN, '-m', 'srdiff_basicsr.train', '-opt', write_options(root / 'train.yml', opt),
             '--launcher', 'pytorch'], cwd=root)
    experiment = root / 'experiments' / 'dist_train'
    assert sorted(p.name for p in (experiment / 'models').iterdir()) == sorted(
        f'net_{net}_{it}.pth' for net in ('g', 'encoder') for it in (2, 4, 'latest'))
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['2.state', '4.state']
    log = next(experiment.glob('train_*.log')).read_text()
    assert log.count('Validation val: 5 images x 1 sample(s), protocol: paper (RGB, no border crop)') == 3  # 2, 4, end

    results = {}
    for launcher in ('pytorch', 'none'):
        name = f'dist_test_{launcher}'
        test_opt = srdiff_options(name, lr_dir, hr_dir, str(experiment / 'models' / 'net_encoder_latest.pth'),
                                  is_train=False)
        test_opt['path']['pretrain_network_g'] = str(experiment / 'models' / 'net_g_latest.pth')
        test_opt['val'].update(num_samples=2, suffix='sr', metrics={
            'psnr': {'type': 'calculate_psnr'}, 'lr_psnr': {'type': 'calculate_lr_psnr', 'scale': 4}},
            protocol='basicsr')
        opt_file = write_options(root / f'{name}.yml', test_opt)
        if launcher == 'pytorch':
            run_cli([*TORCHRUN, '-m', 'srdiff_basicsr.test', '-opt', opt_file, '--launcher', 'pytorch'], cwd=root)
        else:
            run_cli(['-m', 'basicsr.test', '-opt', opt_file], cwd=root)  # the stock entry, one process
        results[launcher] = root / 'results' / name
    with open(results['pytorch'] / 'metrics_tiny_test.csv') as f:
        rows = list(csv.DictReader(f))
    assert [row['image'] for row in rows] == ['000', '001', '002', '003', '004']
    assert float(rows[0]['sigma']) > 0
    assert filecmp.cmp(results['pytorch'] / 'metrics_tiny_test.csv', results['none'] / 'metrics_tiny_test.csv',
                       shallow=False)
    summary = (results['none'] / 'summary_tiny_test.md').read_text()
    assert '- protocol: basicsr (Y channel, border crop = 4)' in summary
    images = sorted(p.name for p in (results['none'] / 'visualization' / 'tiny_test').iterdir())
    assert len(images) == 10 and images == sorted(
        p.name for p in (results['pytorch'] / 'visualization' / 'tiny_test').iterdir())
    for name in images:
        assert filecmp.cmp(results['pytorch'] / 'visualization' / 'tiny_test' / name,
                           results['none'] / 'visualization' / 'tiny_test' / name, shallow=False)


def test_launcher_without_its_environment_is_a_clear_error(project, tmp_path):
    root, lr_dir, hr_dir, encoder = project
    opt = write_options(tmp_path / 'o.yml', srdiff_options('dist_noenv', lr_dir, hr_dir, encoder))
    result = run_cli(['-m', 'srdiff_basicsr.train', '-opt', opt, '--launcher', 'pytorch'], cwd=tmp_path, check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert 'error: --launcher pytorch: environment variable(s) RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set' \
        in result.stderr


def test_slurm_launcher_maps_slurm_variables_and_uses_gloo_on_cpu(tmp_path):
    code = ('import os, srdiff_basicsr, torch.distributed as dist\n'
            'from basicsr.utils.dist_util import init_dist, get_dist_info\n'
            'init_dist("slurm", port=0)\n'
            'print(dist.get_backend(), get_dist_info(), os.environ["RANK"], os.environ["LOCAL_RANK"])\n')
    env = dict(os.environ, SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0', SLURM_NODELIST='localhost',
               MASTER_ADDR='127.0.0.1')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ['gloo', '(0,', '1)', '0', '0'], result.stderr[-2000:]


def test_process_group_is_destroyed_before_interpreter_teardown(tmp_path):
    # Left to the teardown, gloo's threads intermittently abort a finished rank (SIGABRT) under load.
    # An atexit handler registered before init_dist runs after the launcher's own (last in, first out).
    code = ('import atexit, srdiff_basicsr, torch.distributed as dist\n'
            'from basicsr.utils.dist_util import init_dist\n'
            'atexit.register(lambda: print("initialized at exit:", dist.is_initialized()))\n'
            'init_dist("pytorch")\n'
            'print("initialized:", dist.is_initialized())\n')
    env = dict(os.environ, RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='0')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.splitlines() == ['initialized: True', 'initialized at exit: False'], result.stderr[-2000:]
