"""The package as users install it: a wheel with compatible ranges, that adds itself and nothing else,
and an import hook whose changes leave other BasicSR programs' results as they are."""
import os
import subprocess
import sys
import sysconfig
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from zipfile import ZipFile

import pytest
import torch

from tests.conftest import REPO, make_pairs, write_options

STDLIB_ALIAS = ('import sys, torchvision.transforms.functional as f; '
                'sys.modules["torchvision.transforms.functional_tensor"] = f; ')  # BasicSR's one import fix


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    result = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                             str(out), str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return next(out.glob('srdiff_basicsr-*.whl'))


def test_wheel_declares_compatible_ranges_and_ships_the_hook(wheel):
    with ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = Parser().parsestr(archive.read(next(n for n in names if n.endswith('.dist-info/METADATA'))).decode())
    requires = meta.get_all('Requires-Dist')
    assert any(r.startswith('torch>=') for r in requires) and any(r.startswith('basicsr') for r in requires)
    assert not [r for r in requires if '==' in r.split(';')[0]]  # (an extra's marker says extra == 'demo')
    assert {'srdiff_basicsr_hook.pth', 'srdiff_basicsr_hook.py', 'srdiff_basicsr/pipeline.py'} <= set(names)
    assert not [n for n in names if 'benchmark' in n]  # the benchmarks' helpers stay in scripts/


def test_installing_the_wheel_without_deps_changes_no_other_package(wheel, tmp_path):
    """A fresh environment that sees this one's packages (torch, basicsr, ...) gets only the plugin, and
    BasicSR's stock import finds SRDiff through the wheel's own hook."""
    env_dir = tmp_path / 'env'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(env_dir)], check=True)
    python = env_dir / 'bin' / 'python'
    site = Path(subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / 'zz_project_packages.pth').write_text(sysconfig.get_path('purelib') + '\n')
    ours_before = sorted((d.metadata['Name'], d.version) for d in metadata.distributions())
    before = set(os.listdir(site))
    result = subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps', '-q',
                             str(wheel)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    added = set(os.listdir(site)) - before
    assert {name for name in added if not name.startswith('srdiff_basicsr')} <= {'__pycache__'}
    assert all(name.startswith('srdiff_basicsr_hook.') for name in os.listdir(site / '__pycache__'))
    assert sorted((d.metadata['Name'], d.version) for d in metadata.distributions()) == ours_before
    check = ('import basicsr, srdiff_basicsr; from basicsr.utils.registry import MODEL_REGISTRY; '
             'print("SRDiffModel" in MODEL_REGISTRY, srdiff_basicsr.__file__.startswith(sys.argv[1]))')
    out = subprocess.run([python, '-c', 'import sys; ' + check, str(site)], capture_output=True, text=True,
                         cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
    assert out.stdout.split() == ['True', 'True'], out.stderr


def stock_rrdb_options(name, lr_dir, hr_dir):
    """A stock BasicSR run: SRModel + BasicSR's own RRDBNet and PairedImageDataset, L1, on CPU."""
    return dict(
        name=name, model_type='SRModel', scale=4, num_gpu=0, manual_seed=0,
        datasets=dict(train=dict(name='train', type='PairedImageDataset', dataroot_gt=hr_dir, dataroot_lq=lr_dir,
                                 io_backend=dict(type='disk'), gt_size=16, use_hflip=True, use_rot=True,
                                 num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1,
                                 prefetch_mode=None)),
        network_g=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4),
        path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
        train=dict(ema_decay=0.9, optim_g=dict(type='Adam', lr=2e-4),
                   scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5), total_iter=4, warmup_iter=-1,
                   pixel_opt=dict(type='L1Loss', loss_weight=1.0)),
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False))


def test_a_stock_basicsr_training_gives_the_same_weights_with_the_hook_on_and_off(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path / 'data', count=4, hr_size=32)
    runs = {}
    for hook, command in (('1', ['-m', 'basicsr.train']),
                          ('0', ['-c', STDLIB_ALIAS + 'import os, basicsr.train as t; t.train_pipeline(os.getcwd())'])):
        root = tmp_path / f'hook_{hook}'
        root.mkdir()
        opt = write_options(root / 'stock.yml', stock_rrdb_options('stock', lr_dir, hr_dir))
        result = subprocess.run([sys.executable, *command, '-opt', opt], cwd=root, capture_output=True, text=True,
                                env={**os.environ, 'SRDIFF_BASICSR_HOOK': hook}, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[hook] = torch.load(root / 'experiments' / 'stock' / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(runs['1']) == {'params', 'params_ema'}
    for key in runs['1']:
        assert all(torch.equal(runs['1'][key][k], runs['0'][key][k]) for k in runs['1'][key])
