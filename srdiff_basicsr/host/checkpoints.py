"""Checkpoints of this plugin's BasicSR models, in one place: network files and training states written
atomically, never with non-finite weights, the training state holding what an exact resume needs.

``save_network`` and ``save_training_state`` have the signatures of BasicSR's ``BaseModel`` methods: our models
take them as methods (``models.checkpointed``); BasicSR's own models keep theirs. Every rank calls them (BasicSR's
loop saves on all ranks); rank 0 writes.
"""
import time
from os import path as osp

import torch
from basicsr.utils.dist_util import get_dist_info

from srdiff_basicsr.errors import CheckpointError, DivergenceError
from srdiff_basicsr.files import atomic_write
from srdiff_basicsr.host import resume

WRITE_ATTEMPTS = 3  # as BasicSR, for the occasional error of a network file system


def write(obj, path):
    """``torch.save(obj, path)`` through a temporary file, so a kill while saving never leaves a truncated file
    under the real name. A file that still cannot be written stops training, naming it (BasicSR logged "Still
    cannot save" and trained on without checkpoints)."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with atomic_write(path) as tmp:
                torch.save(obj, tmp)
            return
        except OSError as error:
            if attempt == WRITE_ATTEMPTS:
                raise CheckpointError(f'cannot write the checkpoint {path} ({error}); training stopped. Free the space '
                                      '(or fix the folder) and go on with --auto_resume') from None
            time.sleep(1)


def require_finite(named_nets, current_iter):
    """DivergenceError naming every net of ``(name, net)`` with a non-finite weight: never a checkpoint that
    ``--auto_resume`` would continue from."""
    broken = [name for name, net in named_nets if not all(torch.isfinite(p).all() for p in net.parameters())]
    if broken:
        raise DivergenceError(f'iteration {current_iter}: {", ".join(broken)} has non-finite weights; no checkpoint '
                              'written (the last one on disk is the last good one)')


def save_network(model, net, net_label, current_iter, param_key='params'):
    """``models/<net_label>_<iter>.pth`` (``latest`` for iteration -1): under each ``param_key`` the state dict of
    the matching net of ``net`` (one or a list), unwrapped from DDP, on the CPU."""
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError(f'save_network({net_label}): {len(nets)} networks but {len(keys)} param_key(s)')
    bare = [model.get_bare_model(n) for n in nets]
    require_finite([(net_label if len(bare) == 1 else f'{net_label} ({key})', n) for key, n in zip(keys, bare)],
                   current_iter)
    if get_dist_info()[0] != 0:
        return
    checkpoint = {key: {name.removeprefix('module.'): value.cpu() for name, value in n.state_dict().items()}
                  for key, n in zip(keys, bare)}
    label = 'latest' if current_iter == -1 else current_iter
    write(checkpoint, osp.join(model.opt['path']['models'], f'{net_label}_{label}.pth'))


def save_training_state(model, epoch, current_iter):
    """``training_states/<iter>.state`` (none for iteration -1, as BasicSR): BasicSR's epoch, iteration,
    optimizers and schedulers, the model's own ``extra_training_state()`` when it has one, and every rank's data
    position and RNG states (``resume``)."""
    if current_iter == -1:
        return
    positions = resume.all_positions()  # a collective: every rank takes part
    if get_dist_info()[0] != 0:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in model.optimizers],
             'schedulers': [s.state_dict() for s in model.schedulers],
             **(model.extra_training_state() if hasattr(model, 'extra_training_state') else {}),
             resume.STATE_KEY: positions}
    write(state, osp.join(model.opt['path']['training_states'], f'{current_iter}.state'))
