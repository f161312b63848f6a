"""One training per experiment folder: a run marks ``experiments/<name>/.running`` with its process id, and a
second run of the same name started meanwhile stops before BasicSR would archive the first one's folder (its
later checkpoints then landed beside the second's options)."""
import atexit
import contextlib
import functools
import os
from os import path as osp

LOCK = '.running'


def running_pid(experiments_root):
    """The process id of a live run that holds ``experiments_root``, or None."""
    try:
        with open(osp.join(experiments_root, LOCK)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a run that died: the folder is free
    except PermissionError:
        pass  # alive, another user's
    return pid


def claim(opt):
    """Mark the experiment folder as this run's (rank 0), until the process ends."""
    root = opt['path'].get('experiments_root')
    if not root or opt.get('rank', 0) != 0 or not osp.isdir(root):
        return
    lock = osp.join(root, LOCK)
    with open(lock, 'w') as f:
        f.write(str(os.getpid()))

    def release():
        with contextlib.suppress(OSError):
            if open(lock).read().strip() == str(os.getpid()):
                os.remove(lock)
    atexit.register(release)


def claiming(make_exp_dirs):
    """BasicSR's ``make_exp_dirs``, then the new folder claimed."""

    @functools.wraps(make_exp_dirs)
    def wrapper(opt):
        make_exp_dirs(opt)
        if opt.get('is_train'):
            claim(opt)

    return wrapper
