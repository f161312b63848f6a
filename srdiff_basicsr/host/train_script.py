"""What this project adds to BasicSR's training and test scripts (``basicsr.train`` / ``basicsr.test``, and their
copies run as ``__main__`` by ``python -m basicsr.train`` or a checkout's ``basicsr/train.py``), beside
``compat``'s fixes: the resume of ``resume`` (the state read on any device, the newest one that loads, the data
position replayed by the prefetchers), the experiment lock, and the run's options checked as soon as they are
parsed, a user error in one line. Installed by ``plugin``, after our models, whose checks it runs."""
import functools

import basicsr.train
import basicsr.utils.options

from srdiff_basicsr.host import experiment_lock, resume
from srdiff_basicsr.host.cli import parse_and_check_for_stock_script
from srdiff_basicsr.host.compat import stock_script, wrap_once


def install():
    _into_train_script(basicsr.train)
    wrap_once(basicsr.utils.options, 'parse_options', _checked_for_stock_scripts)


def _into_train_script(module):
    """The training script reads the resume state, makes the experiment folder and builds the data prefetcher
    through names of its own."""
    module.load_resume_state = resume.load_resume_state
    for name in ('CPUPrefetcher', 'CUDAPrefetcher'):
        wrap_once(module, name, resume.tracked)
    wrap_once(module, 'make_exp_dirs', experiment_lock.claiming)


def _checked_for_stock_scripts(parse_options):
    """The stock scripts import ``parse_options`` after this patch and call it first: their own copies of the
    names above are replaced here, before they are used, and the options checked as our entry points check them."""

    @functools.wraps(parse_options)
    def wrapper(root_path, is_train=True):
        script = stock_script()
        if script is None:
            return parse_options(root_path, is_train)
        if hasattr(script, 'load_resume_state'):
            _into_train_script(script)
        return parse_and_check_for_stock_script(parse_options, root_path, is_train)

    return wrapper
