"""How the networks run: autocast precision, memory format and torch.compile, and what ``auto`` picks.

``precision: auto`` (the default) is bf16 autocast with channels_last where the device computes bf16 natively
(CUDA GPUs that support it; CPUs with AVX-512-BF16 or AMX), fp32 elsewhere (emulated bf16 is slower than fp32),
with channels_last on CPUs. Measured on the demo's models, bf16 sampling stays within 0.05 dB of fp32 in PSNR
and LR-PSNR (README, "Speed"). Weights, EMA, optimizer state and the sampler's state stay float32.
"""
import os
from contextlib import nullcontext

import torch

from srdiff_basicsr.errors import OptionsError

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PRECISION_CHOICES = ('auto', *PRECISIONS)
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')  # /proc/cpuinfo names of the native bf16 instructions
# SRDIFF_AUTO_EXECUTION=<one of these> makes ``auto`` pick it on every device (e.g. the native-bf16 choice on a
# machine without it, to test that path; or fp32 everywhere, for exact runs), in this process and its children
AUTO_EXECUTIONS = {'fp32': ('fp32', False), 'fp32+channels_last': ('fp32', True),
                   'bf16': ('bf16', False), 'bf16+channels_last': ('bf16', True)}
AUTO_EXECUTION_ENV = 'SRDIFF_AUTO_EXECUTION'


def cpu_flags(cpuinfo='/proc/cpuinfo'):
    """The CPU's feature flags (from Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device):
    """Whether ``device`` computes bf16 in hardware (not emulated through fp32, which is slower than fp32)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == 'cpu' and bool(cpu_flags() & set(BF16_CPU_FLAGS))


def check_precision(precision, device, where):
    if precision not in PRECISION_CHOICES:
        raise OptionsError(f'{where}.precision: must be one of {list(PRECISION_CHOICES)}, got {precision!r}')
    if precision == 'fp16' and torch.device(device).type != 'cuda':
        raise OptionsError(f'{where}.precision: fp16 needs a CUDA device (bf16 works on CPU)')


def auto_execution(device):
    """What ``precision: auto`` runs with on ``device``: (bf16, channels_last) where bf16 is native; fp32 with
    channels_last on other CPUs (the same math, measured 1.2x faster to train and 1.3x to sample there:
    scripts/benchmark_speed.py); plain fp32 elsewhere. SRDIFF_AUTO_EXECUTION, where set, decides instead."""
    forced = os.environ.get(AUTO_EXECUTION_ENV)
    if forced:
        if forced not in AUTO_EXECUTIONS:
            raise OptionsError(f'{AUTO_EXECUTION_ENV}={forced!r}: must be one of {list(AUTO_EXECUTIONS)} '
                               f'(what precision: auto picks), or unset for the device\'s own choice')
        return AUTO_EXECUTIONS[forced]
    if native_bf16(device):
        return 'bf16', True
    return 'fp32', torch.device(device).type == 'cpu'


def resolve_execution(precision, channels_last, device):
    """(precision, channels_last) to run with: ``auto`` as ``auto_execution`` picks, ``channels_last`` None
    following it; an explicit precision is kept, with channels_last off unless asked for."""
    if precision == 'auto':
        precision, auto_channels_last = auto_execution(device)
        if channels_last is None:
            channels_last = auto_channels_last
    return precision, bool(channels_last)


def autocast(device, precision):
    """The autocast context of a precision name (none for fp32)."""
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(torch.device(device).type, dtype)


def compiled(module):
    """torch.compile of ``module``, its compiled kernels cached across runs (inductor's FX-graph cache in a
    folder of the user's cache, unless TORCHINDUCTOR_CACHE_DIR says where), so that a second run does not
    compile the same graphs again."""
    os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', os.path.join(
        os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'srdiff_basicsr', 'torchinductor'))
    return torch.compile(module)
