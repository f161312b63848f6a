"""Several processes (``torchrun ... --launcher pytorch``, slurm) on GPUs or on CPUs.

BasicSR 1.4.2 assumes CUDA in its launcher and DDP wrapping: ``init_dist`` calls
``torch.cuda.set_device(rank % torch.cuda.device_count())`` (ZeroDivisionError without a GPU) and
defaults to nccl, and ``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]``.
The replacements below pick gloo and no device ids on CPU and keep BasicSR's behaviour on GPUs,
except that the GPU is chosen by ``LOCAL_RANK`` (torchrun, multi-node) when it is set, and the
process group is destroyed at exit: BasicSR leaves it to the interpreter's teardown, where gloo's worker
threads can abort a finished process ("terminate called without an active exception", SIGABRT).
"""
import atexit
import os
import subprocess

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from basicsr.utils.dist_util import get_dist_info
from torch.nn.parallel import DataParallel, DistributedDataParallel

from srdiff_basicsr.errors import LauncherError


def init_dist(launcher, backend=None, port=None, **kwargs):
    """Start the process group for ``--launcher pytorch|slurm``; nccl on GPUs, gloo on CPUs."""
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')  # as BasicSR: CUDA cannot be used in forked workers
    if launcher == 'slurm':
        _environment_from_slurm(port)
    elif launcher != 'pytorch':
        raise LauncherError(f'--launcher: unknown launcher {launcher!r} (none, pytorch or slurm)')
    missing = [name for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if name not in os.environ]
    if missing:
        raise LauncherError(f'--launcher {launcher}: environment variable(s) {", ".join(missing)} not set; '
                            'start the processes with torchrun (or srun for slurm)')
    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend or ('nccl' if torch.cuda.is_available() else 'gloo'), **kwargs)
    atexit.register(_destroy_process_group)


def average_gradients(module):
    """Average the gradients of ``module``'s parameters over the processes, as DDP would (none in one process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= dist.get_world_size()


def _destroy_process_group():
    if dist.is_initialized():
        dist.destroy_process_group()


def _environment_from_slurm(port):
    """torch.distributed's variables from slurm's, as BasicSR's slurm launcher sets them."""
    proc_id = int(os.environ['SLURM_PROCID'])
    os.environ['RANK'] = str(proc_id)
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', str(proc_id))
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')  # torch.distributed's default
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')


def model_to_device(self, net):
    """``BaseModel.model_to_device``: DDP with the current GPU, or with no device ids on CPU."""
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids,
                                      find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def all_ranks_agree(flag, device='cpu'):
    """True when ``flag`` is true on every rank (``flag`` itself in one process); ``device``: where the
    process group's backend reduces (a GPU for nccl)."""
    _, world_size = get_dist_info()
    if world_size == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def gather_to_all(items):
    """The concatenation of every rank's list, in rank order (the list itself in one process)."""
    _, world_size = get_dist_info()
    if world_size == 1:
        return list(items)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]
