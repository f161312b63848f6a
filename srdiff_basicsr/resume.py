"""Bit-exact resume: the random-number states and the position in the training data, saved with BasicSR's
training state and restored where BasicSR's loop picks the run up again.

BasicSR's training state holds the optimizers and schedulers only, and its loop restarts the saved epoch at
the first batch with every random stream (the model's noise, the crops and flips) back at the seed. Here:

- each rank records its RNG states when an epoch starts (the prefetcher's reset): they decide the epoch's
  worker seeds and, without workers, its crops and flips;
- a saved training state holds, for every rank, those epoch-start states, the number of batches taken in
  the epoch and the RNG states at the save;
- on resume the epoch-start states come back, the batches already trained on are drawn again and dropped
  (BasicSR reseeds the workers identically every epoch, so only replaying brings them to the same place),
  then the RNG states of the save come back;
- validation runs on forked RNG states: the loop validates right after a save, a resumed run does not, and
  training must draw the same numbers either way.
"""
import contextlib
import functools
import random

import numpy as np
import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger

STATE_KEY = 'resume'


def rng_states():
    """The RNG states of this process: torch (CPU and, once used, CUDA), numpy, python; tensors and plain
    values only, so that ``torch.load(weights_only=True)`` reads them."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = {'torch': torch.get_rng_state(), 'python': random.getstate(),
              'numpy': (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states):
    torch.set_rng_state(states['torch'])
    kind, keys, pos, has_gauss, cached_gaussian = states['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    random.setstate(states['python'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


@contextlib.contextmanager
def forked_rng():
    """Random numbers drawn inside the block do not change those drawn after it."""
    states = rng_states()
    try:
        yield
    finally:
        set_rng_states(states)


class DataPosition:
    """Where this process is in the training data, and where a resumed run must take it up."""

    def __init__(self):
        self.epoch_start = None
        self.batches = 0
        self.pending = None  # the saved position of this rank, until the resumed epoch starts
        self.warnings = []  # for the log, which BasicSR opens after loading the state

    def state(self):
        return {'epoch_start': self.epoch_start, 'batches': self.batches, 'at_save': rng_states()}


POSITION = DataPosition()  # one training run per process, as BasicSR's loop


def tracked(prefetcher_class):
    """A subclass of BasicSR's ``CPUPrefetcher`` or ``CUDAPrefetcher`` that keeps ``POSITION`` and takes
    a resumed run back to its saved position at the first epoch start."""

    class Tracked(prefetcher_class):
        def reset(self):
            saved, POSITION.pending = POSITION.pending, None
            if POSITION.warnings:
                for message in POSITION.warnings:
                    get_root_logger().warning(message)
                POSITION.warnings = []
            if saved is not None:
                set_rng_states(saved['epoch_start'])
            POSITION.epoch_start, POSITION.batches = rng_states(), 0
            super().reset()
            if saved is not None:
                self._replay(saved)

        def _replay(self, saved):
            logger = get_root_logger()
            if self.ori_loader.persistent_workers:
                logger.warning('persistent_workers: the workers\' random crops and flips are not replayed, the '
                               'resumed run draws other ones than an uninterrupted run would')
            logger.info(f'Resuming the data at batch {saved["batches"]} of the epoch (drawing the batches '
                        'already trained on again, for the same random crops and flips)')
            for _ in range(saved['batches']):
                if self.next() is None:
                    logger.warning('The training data has fewer batches than when the state was saved: the '
                                   'resumed run continues with the next epoch')
                    break
            set_rng_states(saved['at_save'])

        def next(self):
            batch = super().next()
            if batch is not None:
                POSITION.batches += 1
            return batch

    Tracked.__name__ = Tracked.__qualname__ = prefetcher_class.__name__
    return Tracked


def saving_position(save_training_state):
    """Wraps ``BaseModel.save_training_state`` (which rank 0 alone writes) so that the file also holds every
    rank's position. All ranks reach it at the same iteration, as BasicSR's loop saves on all of them."""

    @functools.wraps(save_training_state)
    def wrapper(self, epoch, current_iter):
        if current_iter == -1:  # BasicSR writes no state for 'latest'
            return save_training_state(self, epoch, current_iter)
        positions = [POSITION.state()]
        if dist.is_available() and dist.is_initialized():
            positions = [None] * dist.get_world_size()
            dist.all_gather_object(positions, POSITION.state())
        with state_extended({STATE_KEY: positions}):
            return save_training_state(self, epoch, current_iter)

    return wrapper


@contextlib.contextmanager
def state_extended(extra):
    """Within the block, a training state (a dict with ``optimizers``) passed to ``torch.save`` gets ``extra``."""
    original = torch.save

    def save(obj, *args, **kwargs):
        if isinstance(obj, dict) and 'optimizers' in obj:
            obj = {**obj, **extra}
        return original(obj, *args, **kwargs)

    torch.save = save
    try:
        yield
    finally:
        torch.save = original


def validating_on_forked_rng(validation):
    @functools.wraps(validation)
    def wrapper(*args, **kwargs):
        with forked_rng():
            return validation(*args, **kwargs)

    return wrapper


def restore_position(state, opt):
    """Hands this rank's saved position to ``POSITION``; a state without one (saved by BasicSR alone) or saved
    with another number of processes resumes as BasicSR does, at the first batch of its epoch, with a warning."""
    positions = state.get(STATE_KEY)
    world_size = opt.get('world_size', 1)
    if positions is None:
        POSITION.warnings.append('The training state holds no data position (saved without srdiff-basicsr): the '
                                 'run resumes at the first batch of its epoch, not bit-exact')
    elif len(positions) != world_size:
        POSITION.warnings.append(
            f'The training state was saved by {len(positions)} process(es), this run has {world_size}: the data '
            'position is not restored, the run resumes at the first batch of its epoch, not bit-exact')
    else:
        POSITION.pending = positions[opt.get('rank', 0)]
