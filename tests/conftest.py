import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from srdiff_basicsr.ops.resize import imresize_uint8

REPO = Path(__file__).resolve().parents[1]
# scripts/benchmarking, the benchmarks' helpers (not part of the wheel), as the scripts import it
sys.path.insert(0, str(REPO / 'scripts'))
# under pytest-xdist (scripts/test.sh: one worker per core) each worker computes on its share of the cores;
# SRDIFF_TEST_THREADS=N sets the threads of every worker instead (scripts/test_matrix.sh: 1 and 2)
# and so do the training runs it starts (OMP_NUM_THREADS, which torch reads at start-up): a subprocess taking every
# core while the other worker computes slowed the suite by a third
_WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
_THREADS = os.environ.get('SRDIFF_TEST_THREADS') or (str(max(1, (os.cpu_count() or 1) // _WORKERS))
                                                     if _WORKERS > 1 else None)
if _THREADS is not None:
    torch.set_num_threads(int(_THREADS))
    os.environ['OMP_NUM_THREADS'] = _THREADS
# ``precision: auto`` picks plain fp32 in the suite and its subprocesses on any machine unless
# SRDIFF_AUTO_EXECUTION says otherwise (scripts/test_matrix.sh runs it as on a native-bf16 machine, and with
# channels_last); tests/test_execution.py checks what auto picks on each kind of device
os.environ.setdefault('SRDIFF_AUTO_EXECUTION', 'fp32')


def reference_dir():
    """shared/reference: SRDIFF_REFERENCE_DIR, else beside this checkout, else beside the repository it was
    cloned from (a clone in a temporary folder, as CI makes)."""
    if 'SRDIFF_REFERENCE_DIR' in os.environ:
        return Path(os.environ['SRDIFF_REFERENCE_DIR'])
    beside = REPO.parent / 'shared' / 'reference'
    origin = subprocess.run(['git', '-C', str(REPO), 'config', '--get', 'remote.origin.url'],
                            capture_output=True, text=True).stdout.strip()
    if beside.is_dir() or not origin or not Path(origin).is_dir():
        return beside
    return Path(origin).resolve().parent / 'shared' / 'reference'


REFERENCE = reference_dir()
# SRDIFF_TEST_DEVICE=cuda runs the golden tests on a GPU (scripts/gpu_check.sh), with TF32 off
TEST_DEVICE = torch.device(os.environ.get('SRDIFF_TEST_DEVICE', 'cpu'))
if TEST_DEVICE.type == 'cuda':
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

# a tiny SRDiff: enough to exercise every code path in seconds
TINY_ENCODER = dict(type='SRDiffRRDBNet', num_feat=8, num_block=2, num_grow_ch=4)
TINY_UNET = dict(type='SRDiffUNet', dim=8, dim_mults=[1, 2])


# SRDIFF_GOLDEN_ULP=n moves every non-integer float of the golden data n ulps up or down (seeded): a CPU whose
# transcendentals or reductions round the last bit otherwise (tests/test_machine_independence.py)
GOLDEN_ULP = int(os.environ.get('SRDIFF_GOLDEN_ULP', '0'))


def off_by_ulps(data, ulps, generator):
    """``data`` (nested dicts, lists, tuples of tensors and others) with each non-integer float ``ulps`` ulps off,
    up or down at random per element; integer-valued floats (steps, masks) are left as recorded."""
    if isinstance(data, dict):
        return {key: off_by_ulps(value, ulps, generator) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(off_by_ulps(value, ulps, generator) for value in data)
    if not (torch.is_tensor(data) and data.is_floating_point()) or ulps == 0:
        return data
    up = torch.rand(data.shape, generator=generator).to(data.device) < 0.5
    moved = data
    for _ in range(ulps):
        moved = torch.where(up, torch.nextafter(moved, torch.full_like(moved, float('inf'))),
                            torch.nextafter(moved, torch.full_like(moved, float('-inf'))))
    return torch.where(data == data.round(), data, moved)


def load_golden(name, device=TEST_DEVICE):
    """shared/reference/golden/<name>, data recorded from an official implementation, on ``device``
    (``GOLDEN_ULP`` ulps off where SRDIFF_GOLDEN_ULP says so)."""
    path = REFERENCE / 'golden' / name
    if not path.is_file():
        raise FileNotFoundError(f'golden data not found at {path}; set SRDIFF_REFERENCE_DIR to shared/reference')
    data = torch.load(path, weights_only=False, map_location=device)
    return off_by_ulps(data, GOLDEN_ULP, torch.Generator().manual_seed(0))


def assert_within_ulps(actual, expected, ulps, what=''):
    """``actual`` equals the reference ``expected`` up to ``ulps`` units in the last place of its dtype: the
    tolerance of a reference value that another CPU's libm or SIMD width may round otherwise."""
    eps = torch.finfo(expected.dtype).eps
    assert actual.dtype == expected.dtype and torch.allclose(actual, expected, rtol=ulps * eps, atol=0), \
        f'{what}: off by up to {((actual - expected).abs() / expected.abs()).nan_to_num().max() / eps:.3g} ulps'


def differing_tensors(expected, got):
    """The keys of two state dicts whose tensors differ in any bit: our own bit-exactness (resume, ranks), which
    holds on every CPU because both sides ran the same ops in the same order on the same machine."""
    return [key for key in expected if not torch.equal(expected[key], got[key])]


@pytest.fixture(scope='session')
def golden():
    return load_golden('srdiff_official_tiny.pt')


def photo_crops(count, size, seed=0):
    """Real-photograph crops (scikit-image's astronaut), uint8 RGB."""
    from skimage import data
    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        top, left = rng.integers(0, photo.shape[0] - size, 2)
        crops.append(np.ascontiguousarray(photo[top:top + size, left:left + size]))
    return crops


def make_pairs(root, count=4, hr_size=32, scale=4, seed=0):
    """root/HR and root/LR folders of PNG pairs; returns (lr_dir, hr_dir)."""
    hr_dir, lr_dir = Path(root) / 'HR', Path(root) / 'LR'
    hr_dir.mkdir(parents=True, exist_ok=True)
    lr_dir.mkdir(parents=True, exist_ok=True)
    for i, hr in enumerate(photo_crops(count, hr_size, seed)):
        cv2.imwrite(str(hr_dir / f'{i:03d}.png'), hr[..., ::-1])
        cv2.imwrite(str(lr_dir / f'{i:03d}.png'), imresize_uint8(hr, 1 / scale)[..., ::-1])
    return str(lr_dir), str(hr_dir)


def tiny_data_and_encoder(root, hr_size, count=2):
    """(lr_dir, hr_dir, encoder weights): photograph pairs under root/data and a random tiny x4 encoder."""
    lr_dir, hr_dir = make_pairs(Path(root) / 'data', count=count, hr_size=hr_size)
    torch.manual_seed(0)
    return lr_dir, hr_dir, save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), Path(root) / 'encoder.pth')


def dataset_opt(name, lr_dir, hr_dir, phase, scale=4, **extra):
    opt = dict(name=name, type='CheckedPairedImageDataset', dataroot_gt=hr_dir, dataroot_lq=lr_dir,
               io_backend=dict(type='disk'), phase=phase, scale=scale)
    if phase == 'train':
        opt.update(gt_size=16, use_hflip=True, use_rot=True, num_worker_per_gpu=0, batch_size_per_gpu=2,
                   dataset_enlarge_ratio=1, prefetch_mode=None)
    opt.update(extra)
    return opt


def encoder_train_options(name, lr_dir, hr_dir, scale=4, total_iter=4):
    train_set = dataset_opt('train', lr_dir, hr_dir, 'train', scale)
    return dict(
        name=name, model_type='SRModel', scale=scale, num_gpu=0, manual_seed=0,
        datasets=dict(train=train_set),
        network_g=dict(TINY_ENCODER, scale=scale),
        path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
        train=dict(optim_g=dict(type='Adam', lr=2e-4), scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5),
                   total_iter=total_iter, warmup_iter=-1, pixel_opt=dict(type='L1Loss', loss_weight=1.0)),
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False))


def srdiff_options(name, lr_dir, hr_dir, encoder_path, scale=4, total_iter=4, is_train=True, timesteps=20):
    opt = dict(
        name=name, model_type='SRDiffModel', scale=scale, num_gpu=0, manual_seed=0,
        network_g=dict(TINY_UNET), network_encoder=dict(TINY_ENCODER),
        diffusion=dict(timesteps=timesteps),
        path=dict(pretrain_network_g=None, pretrain_network_encoder=encoder_path, resume_state=None),
        val=dict(save_img=True, suffix=None, seed=0,
                 metrics=dict(psnr=dict(type='calculate_psnr', crop_border=0, test_y_channel=False))))
    if is_train:
        opt['datasets'] = dict(train=dataset_opt('train', lr_dir, hr_dir, 'train', scale),
                               val=dataset_opt('val', lr_dir, hr_dir, 'val', scale))
        opt['train'] = dict(optim_g=dict(type='Adam', lr=2e-4),
                            scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5),
                            total_iter=total_iter, warmup_iter=-1)
        opt['logger'] = dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
        opt['val']['val_freq'] = 1000
    else:
        opt['datasets'] = dict(test_1=dataset_opt('tiny_test', lr_dir, hr_dir, 'test', scale))
    return opt


def load_script(file_name):
    """scripts/<file_name> loaded as a module (the scripts are not a package), so a test can call its main()."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(Path(file_name).stem, REPO / 'scripts' / file_name)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def write_options(path, opt):
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def run_cli(args, cwd, timeout=300, check=True):
    """Run ``python args...`` in cwd; returns the CompletedProcess with stdout+stderr as text."""
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    return result


def save_basicsr_weights(net, path):
    torch.save({'params': net.state_dict()}, path)
    return str(path)


def make_experiment(root, timesteps=100, network_g=None, diffusion=None, **sections):
    """A tiny SRDiff experiment folder as BasicSR leaves it: models/net_*_latest.pth and the options file
    (``network_g``, ``diffusion``: other sections, e.g. an ECDP's; ``sections``: more, e.g. a student's
    ``distill``)."""
    root = Path(root)
    (root / 'models').mkdir(parents=True)
    torch.manual_seed(0)
    unet = dict(network_g or TINY_UNET, scale=4, encoder_num_feat=8, encoder_num_block=2)
    save_basicsr_weights(build_network(dict(unet)), root / 'models' / 'net_g_latest.pth')
    save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), root / 'models' / 'net_encoder_latest.pth')
    write_options(root / f'{root.name}.yml', dict(name=root.name, model_type='SRDiffModel', scale=4, network_g=unet,
                                                   network_encoder=dict(TINY_ENCODER),
                                                   diffusion=diffusion or dict(timesteps=timesteps), **sections))
    return root


def sample(sampler, network, schedule, x_T, generator=None, noises=None, clip_x0=True, t_start=None,
           parametrization='eps', **options):
    """x0 by the sampler table's ``sampler`` with a network (x_t, t) -> its prediction, as the pipeline runs it."""
    from srdiff_basicsr.diffusion.noise import noise_source
    from srdiff_basicsr.diffusion.parametrization import Denoiser
    from srdiff_basicsr.diffusion.samplers import run_sampler, sampler_options

    checked = sampler_options({'type': sampler, **options}, schedule.num_timesteps)
    return run_sampler(checked, Denoiser(network, schedule, parametrization, clip_x0), schedule, x_T,
                       noise_source(generator, noises), t_start)


@pytest.fixture(scope='session')
def stablesr_golden():
    """StableSR's golden data (see ``tests/stablesr_fixtures.py``)."""
    from tests.stablesr_fixtures import load_golden
    return load_golden()


@pytest.fixture(scope='session')
def stablesr_nets(stablesr_golden):
    """Our StableSR (U-Net, time-aware encoder, VAE) with the golden data's official weights, in eval mode."""
    from tests.stablesr_fixtures import loaded_networks
    return loaded_networks(stablesr_golden)
