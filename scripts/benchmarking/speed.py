"""Speed measured against the machine's limit: time on a device, FLOPs of a call (torch's FLOP counter), the
device's nominal peak, and one call's time split by kind of op (torch.profiler)."""
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from srdiff_basicsr.execution import cpu_flags
from srdiff_basicsr.ops.resize import imresize_uint8

# Dense tensor-core / vector peaks in TFLOP/s, from the vendors' data sheets (SXM boards): fp32 is the TF32
# tensor-core figure, which convolutions use while cuDNN allows TF32 (torch's default), else plain fp32.
GPU_PEAK_TFLOPS = {'H200': {'tf32': 494.7, 'fp32': 66.9, 'bf16': 989.4, 'fp16': 989.4},
                   'H100': {'tf32': 494.7, 'fp32': 66.9, 'bf16': 989.4, 'fp16': 989.4},
                   'A100': {'tf32': 156.0, 'fp32': 19.5, 'bf16': 312.0, 'fp16': 312.0}}
# FLOPs per cycle and core of the widest path a CPU flag gives (two FMA units, as on Xeon server parts).
CPU_FLOPS_PER_CYCLE = {'fp32': [('avx512f', 64), ('avx2', 32)],
                       'bf16': [('amx_bf16', 1024), ('avx512_bf16', 128), ('avx512f', 64), ('avx2', 32)]}
OP_CATEGORIES = [  # (category, substrings of the aten op names); the first match wins
    ('convolution', ('conv',)),
    ('attention and matrix products', ('attention', 'softmax', 'bmm', 'mm', 'linear', 'matmul', 'einsum')),
    ('normalisation', ('norm',)),
    ('padding, casts and copies', ('pad', 'cat', 'copy', 'clone', 'contiguous', '::to', 'stack', 'slice')),
]
OTHER = 'element-wise and other'


SCALE = 8  # the paper's CelebA x8 networks


def paper_encoder(num_feat=32):
    return dict(type='SRDiffRRDBNet', scale=SCALE, num_feat=num_feat, num_block=8, num_grow_ch=num_feat // 2)


def paper_model(device, encoder_path, dim=64, encoder_feat=32, train_opt=None, val_opt=None):
    """SRDiffModel with the paper's CelebA x8 networks (``dim``, ``encoder_feat``: their widths) and the encoder
    weights at ``encoder_path``; ``train_opt``/``val_opt`` add execution options."""
    from basicsr.models import build_model
    opt = dict(name='benchmark', model_type='SRDiffModel', scale=SCALE, device=device, is_train=True,
               num_gpu=1 if str(device).startswith('cuda') else 0, dist=False, rank=0, world_size=1, manual_seed=0,
               network_g=dict(type='SRDiffUNet', dim=dim, dim_mults=[1, 2, 2, 4]),
               network_encoder=paper_encoder(encoder_feat),
               path=dict(pretrain_network_g=None, pretrain_network_encoder=encoder_path,
                         models=os.path.dirname(encoder_path), training_states=os.path.dirname(encoder_path)),
               train=dict(optim_g=dict(type='Adam', lr=2e-4), total_iter=10,
                          scheduler=dict(type='MultiStepLR', milestones=[100000], gamma=0.5), **(train_opt or {})),
               val=dict(seed=0, **(val_opt or {})))
    torch.manual_seed(0)  # the same initial U-Net for every configuration
    return build_model(opt)


def photo_batches(count, batch, size, device):
    """``count`` batches of ``size`` x ``size`` HR crops of scikit-image photographs and their x8 bicubic LR."""
    from skimage import data
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(count):
        crops = []
        for _ in range(batch):
            photo = photos[rng.integers(len(photos))]
            top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
            crops.append(np.ascontiguousarray(photo[top:top + size, left:left + size]))
        to_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)  # noqa: E731
        batches.append({'gt': to_tensor(crops).to(device),
                        'lq': to_tensor([imresize_uint8(c, 1 / SCALE) for c in crops]).to(device)})
    return batches


def synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, repeats, device, warmup=True):
    """Mean seconds of ``fn()`` over ``repeats`` calls, after one warm-up call (and compilation) if ``warmup``."""
    if warmup:
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def count_flops(fn):
    """(total FLOPs of ``fn()``, {op name: FLOPs}) by torch's FLOP counter (convolutions, matrix products,
    attention; element-wise ops count 0)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    per_op = {str(op).removeprefix('aten.').split('.')[0]: int(n)
              for op, n in counter.get_flop_counts().get('Global', {}).items()}
    return counter.get_total_flops(), per_op


def cpu_clock_ghz():
    """The CPU's clock from /proc/cpuinfo (None where it is not there)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('cpu MHz'):
                    return float(line.split(':')[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def nominal_peak_gflops(device, precision):
    """(GFLOP/s, how it was found) of ``device`` at ``precision``; (None, why not) when unknown."""
    device = torch.device(device)
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
        for board, peaks in GPU_PEAK_TFLOPS.items():
            if board in name:
                kind = 'tf32' if precision == 'fp32' and torch.backends.cudnn.allow_tf32 else precision
                return peaks[kind] * 1000, f'{board} data sheet, dense {kind}'
        return None, f'no peak known for {name}'
    clock, flags, cores = cpu_clock_ghz(), cpu_flags(), torch.get_num_threads()
    per_cycle = next((n for flag, n in CPU_FLOPS_PER_CYCLE.get(precision, []) if flag in flags), None)
    if clock is None or per_cycle is None:
        return None, 'CPU clock or vector width unknown'
    return cores * clock * per_cycle, f'{cores} cores x {clock:.2f} GHz x {per_cycle} FLOP/cycle'


def op_category(name):
    lowered = name.lower()
    return next((category for category, keys in OP_CATEGORIES if any(key in lowered for key in keys)), OTHER)


def profile_by_category(fn, device, repeats=3):
    """{category: seconds per call} of ``fn()`` (after a warm-up call), from the self time of every op that
    torch.profiler records (the device's time on CUDA, the CPU's elsewhere)."""
    from torch.profiler import ProfilerActivity, profile
    cuda = torch.device(device).type == 'cuda'
    fn()
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            fn()
        synchronize(device)
    seconds = dict.fromkeys([category for category, _ in OP_CATEGORIES] + [OTHER], 0.0)
    for event in prof.key_averages():
        self_us = event.self_device_time_total if cuda else event.self_cpu_time_total
        seconds[op_category(event.key)] += self_us / 1e6 / repeats
    return seconds


def machine(device):
    """E.g. 'CPU (x86_64, 2 cores, 2 torch threads)' or the GPU's name."""
    import platform
    if torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(device)
    return (f'CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
            f'{torch.get_num_threads()} torch threads)')
