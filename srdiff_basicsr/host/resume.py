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

``load_resume_state`` replaces the training script's: it finds and reads the state (``checkpoints`` writes it).
"""
import contextlib
import functools
import glob
import os
import random
from os import path as osp

import numpy as np
import torch
import torch.distributed as dist
from basicsr.utils import check_resume, get_root_logger

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.host import experiment_lock
from srdiff_basicsr.network_options import network_label

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


def all_positions():
    """Every rank's ``POSITION.state()``, for the training state that rank 0 writes; a collective, so all ranks
    call it at the same iteration (BasicSR's loop saves on all of them)."""
    if dist.is_available() and dist.is_initialized():
        positions = [None] * dist.get_world_size()
        dist.all_gather_object(positions, POSITION.state())
        return positions
    return [POSITION.state()]


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


def load_resume_state(opt):
    """Replaces ``basicsr.train.load_resume_state``, which has four problems:

    - it maps the state onto ``torch.cuda.current_device()``, so resuming fails on a machine
      without CUDA ("Torch not compiled with CUDA enabled" / "no CUDA GPUs are available");
    - ``--auto_resume`` looks in ``./experiments/<name>`` relative to the current directory, while
      training writes to ``<root_path>/experiments/<name>``; the two differ for
      ``python -m basicsr.train`` and ``basicsr/train.py`` run from elsewhere;
    - it takes the newest ``.state`` file even when a killed run left it unreadable;
    - the state has no RNG states and no data position, so a resumed run trains on other numbers.

    Here the state is read where training writes it, onto the training device, ``--auto_resume``
    falls back to the newest state that loads (and whose network files exist), and the saved data
    position is handed to ``resume``.
    """
    if torch.cuda.is_available() and opt.get('num_gpu', 0) != 0:
        map_location = f'cuda:{torch.cuda.current_device()}'
    else:
        map_location = 'cpu'

    _remove_temporary_files(opt)
    state = None
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        unreadable = []
        for state_path in _training_states_newest_first(state_dir):
            try:
                candidate = torch.load(state_path, map_location=map_location)
            except Exception as error:  # a state cut short by a kill: try the previous one
                POSITION.warnings.append(f'Skipping unreadable training state {state_path}: {error}')
                unreadable.append(f'{state_path} ({type(error).__name__})')
                continue
            if _network_files_exist(opt, candidate['iter']):
                opt['path']['resume_state'] = state_path
                state = candidate
                break
        if state is None and unreadable:  # starting over would archive the run's folder as if it were old
            raise OptionsError(f'--auto_resume: no training state loads ({", ".join(unreadable)} unreadable); move '
                               'them away to train from the start, or resume from a copy with path.resume_state')
    elif opt['path'].get('resume_state'):
        state_path = opt['path']['resume_state']
        if not osp.isfile(state_path):
            raise FileNotFoundError(f'path.resume_state: no such training state file: {state_path}')
        state = torch.load(state_path, map_location=map_location)
    if state is not None:
        check_resume(opt, state['iter'])
        restore_position(state, opt)
        experiment_lock.claim(opt)  # the folder is kept: mark it as this run's
    return state


def _remove_temporary_files(opt):
    """A run killed while saving leaves the atomic writer's temporary file (``.net_g_8.pth.<random>.tmp``,
    ``.8.state.<random>.tmp``; ``net_g_8.pth.tmp`` from earlier versions); the next start of the same experiment
    removes them."""
    for key in ('models', 'training_states'):
        folder = opt['path'].get(key)
        leftovers = glob.glob(osp.join(folder, '.*.tmp')) + glob.glob(osp.join(folder, '*.tmp')) if folder else []
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):  # another rank was first
                os.remove(path)


def _training_states_newest_first(state_dir):
    if not osp.isdir(state_dir):
        return []
    iters = []
    for name in os.listdir(state_dir):
        stem, ext = osp.splitext(name)
        if ext == '.state' and stem.isdigit():
            iters.append(int(stem))
    return [osp.join(state_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


def _network_files_exist(opt, resume_iter):
    models_dir = opt['path'].get('models')
    if models_dir is None:
        return True
    ignored = opt['path'].get('ignore_resume_networks') or []
    labels = [network_label(key) for key in opt if key.startswith('network_') and key not in ignored]
    return all(osp.isfile(osp.join(models_dir, f'net_{label}_{resume_iter}.pth')) for label in labels)
