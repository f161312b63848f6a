"""The few fixes BasicSR 1.4.2 (the last release, 2022-08) needs on today's torch/torchvision.

Each fix names the upstream problem it works around and is covered by ``tests/test_compat.py``.
``before_basicsr_import`` must run before ``basicsr`` is imported; ``after_basicsr_import`` patches
the imported modules. Both are idempotent.
"""
import contextlib
import functools
import glob
import math
import os
import sys
import warnings
from collections import OrderedDict
from os import path as osp

from srdiff_basicsr.files import atomic_write


def before_basicsr_import():
    """torchvision >= 0.17 removed ``torchvision.transforms.functional_tensor``, which
    ``basicsr/data/degradations.py`` imports (XPixelGroup/BasicSR PR #650, fixed on master,
    never released). The function it needs, ``rgb_to_grayscale``, lives on in
    ``torchvision.transforms.functional``; alias the old module name to it."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision: nothing to fix)
    except ImportError:
        import torchvision.transforms.functional as functional
        sys.modules[name] = functional


def after_basicsr_import():
    """The changes to BasicSR's modules, which every program in the environment then sees (the README's
    table lists them with their effect on other BasicSR programs): resume on CPU, from the experiment
    root and bit-exact, a launcher that works without GPUs, outputs of ``python -m basicsr.train`` in the
    cwd, and checkpoints written atomically."""
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    from srdiff_basicsr import distributed, resume

    basicsr.utils.dist_util.init_dist = basicsr.utils.options.init_dist = distributed.init_dist
    _replace_in_train_script(basicsr.train)
    # ``python -m basicsr.train`` then finds the module imported before runpy runs it as __main__, and warns of
    # "unpredictable behaviour"; the names it patches are patched in __main__ too (see parse_options below)
    warnings.filterwarnings('ignore', message="'basicsr.train' found in sys.modules", category=RuntimeWarning)
    _wrap(basicsr.utils.options, 'parse_options', _with_root_outside_site_packages)
    basicsr.utils.options.ordered_yaml = safe_ordered_yaml
    basicsr.utils.options._postprocess_yml_value = literal_yml_value
    _wrap(BaseModel, 'save_network', _with_atomic_torch_save)
    _wrap(BaseModel, 'save_training_state', lambda method: _with_atomic_torch_save(resume.saving_position(method)))
    _wrap(BaseModel, 'validation', resume.validating_on_forked_rng)


def safe_ordered_yaml():
    """BasicSR's ``ordered_yaml`` returns yaml's full ``Loader``, so an options file with
    ``!!python/object/apply:os.system [...]`` runs that command when BasicSR parses it. Options are data:
    a safe loader that keeps the order (OrderedDict mappings, as BasicSR's), and BasicSR's Dumper."""
    import yaml

    class OrderedSafeLoader(yaml.SafeLoader):
        pass

    def mapping(loader, node):
        loader.flatten_mapping(node)
        return OrderedDict(loader.construct_pairs(node))

    OrderedSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return OrderedSafeLoader, yaml.SafeDumper


def literal_yml_value(value):
    """``--force_yml key=value``'s value as YAML reads it (None for none, as BasicSR), where BasicSR's
    ``_postprocess_yml_value`` runs ``eval`` on anything that starts with '['."""
    import yaml
    if value.lower() == 'none':
        return None
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _wrap(owner, name, wrapper):
    """``owner.name = wrapper(owner.name)``, once."""
    original = getattr(owner, name)
    if not getattr(original, '_srdiff', False):
        wrapped = wrapper(original)
        wrapped._srdiff = True
        setattr(owner, name, wrapped)


def _replace_in_train_script(module):
    """BasicSR's training script (``basicsr.train``, or a checkout's ``basicsr/train.py`` run as
    ``__main__``) reads the resume state, makes the experiment folder, counts the epochs and builds the data
    prefetcher through names of its own."""
    from srdiff_basicsr import experiment_lock, resume
    module.load_resume_state = load_resume_state
    for name in ('CPUPrefetcher', 'CUDAPrefetcher'):
        _wrap(module, name, resume.tracked)
    _wrap(module, 'create_train_val_dataloader', _with_epochs_of_the_loader)
    _wrap(module, 'make_exp_dirs', experiment_lock.claiming)


def _with_epochs_of_the_loader(create):
    """BasicSR counts an epoch as ceil(images / batch) iterations, but its training loader drops the last,
    incomplete batch: with 3 images in batches of 2, ``total_iter: 40`` ran 20 epochs of one iteration and
    stopped at iteration 21. Here the epochs are counted from the loader's own length, so every run reaches
    ``total_iter``."""

    @functools.wraps(create)
    def wrapper(opt, logger):
        train_loader, train_sampler, val_loaders, total_epochs, total_iters = create(opt, logger)
        if train_loader is not None:
            if len(train_loader) == 0:
                from srdiff_basicsr.errors import OptionsError
                raise OptionsError(f"datasets.train.batch_size_per_gpu: {opt['datasets']['train']['batch_size_per_gpu']}"
                                   f' is more than the {len(train_sampler)} training samples of a process')
            total_epochs = math.ceil(total_iters / len(train_loader))
        return train_loader, train_sampler, val_loaders, total_epochs, total_iters

    return wrapper


def _with_root_outside_site_packages(parse_options):
    """``python -m basicsr.train`` (and ``basicsr.test``) on an installed BasicSR take the parent of
    the installed package, i.e. site-packages, as root_path, and write experiments/ and results/
    there. The stock scripts, run as ``__main__``, import ``parse_options`` after this patch, so
    redirecting such a root to the current directory fixes both stock entry points.
    (tb_logger/ still follows the unpatched root there; use ``python -m srdiff_basicsr.train``.)

    Those scripts also define their own copy of ``load_resume_state`` and import the prefetchers, which
    the patch of ``basicsr.train`` does not reach; ``parse_options`` is the first thing their pipeline
    calls, so those names are replaced here, before they are used, and the options are checked here
    as our entry points check them."""

    @functools.wraps(parse_options)
    def wrapper(root_path, is_train=True):
        import basicsr
        if osp.abspath(root_path) == osp.dirname(osp.dirname(osp.abspath(basicsr.__file__))) and \
                not osp.isfile(osp.join(root_path, 'setup.py')):  # an installed package, not a checkout
            root_path = os.getcwd()
        main = sys.modules.get('__main__')
        main_file = getattr(main, '__file__', None) or ''
        if main_file.endswith((osp.join('basicsr', 'train.py'), osp.join('basicsr', 'test.py'))):
            from srdiff_basicsr.cli import parse_and_check_for_stock_script
            if hasattr(main, 'load_resume_state'):
                _replace_in_train_script(main)
            return parse_and_check_for_stock_script(parse_options, root_path, is_train)
        return parse_options(root_path, is_train)

    return wrapper


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
    import torch
    from basicsr.utils import check_resume

    from srdiff_basicsr import experiment_lock, resume

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
                resume.POSITION.warnings.append(f'Skipping unreadable training state {state_path}: {error}')
                unreadable.append(f'{state_path} ({type(error).__name__})')
                continue
            if _network_files_exist(opt, candidate['iter']):
                opt['path']['resume_state'] = state_path
                state = candidate
                break
        if state is None and unreadable:  # starting over would archive the run's folder as if it were old
            from srdiff_basicsr.errors import OptionsError
            raise OptionsError(f'--auto_resume: no training state loads ({", ".join(unreadable)} unreadable); move '
                               'them away to train from the start, or resume from a copy with path.resume_state')
    elif opt['path'].get('resume_state'):
        state_path = opt['path']['resume_state']
        if not osp.isfile(state_path):
            raise FileNotFoundError(f'path.resume_state: no such training state file: {state_path}')
        state = torch.load(state_path, map_location=map_location)
    if state is not None:
        check_resume(opt, state['iter'])
        resume.restore_position(state, opt)
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
    labels = [key[len('network_'):] for key in opt if key.startswith('network_') and key not in ignored]
    return all(osp.isfile(osp.join(models_dir, f'net_{label}_{resume_iter}.pth')) for label in labels)


@contextlib.contextmanager
def atomic_torch_save():
    """Within the block, ``torch.save(obj, path)`` writes a temporary file and renames it into place,
    so a run killed while saving never leaves a half-written checkpoint under the real name."""
    import torch
    original = torch.save

    failures = {}  # path -> the error of its last attempt, while it has not been written

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        try:
            with atomic_write(f) as tmp:
                original(obj, tmp, *args, **kwargs)
        except Exception as error:
            failures[os.fspath(f)] = error
            raise
        failures.pop(os.fspath(f), None)

    torch.save = save
    try:
        yield failures
    finally:
        torch.save = original


def _with_atomic_torch_save(method):
    """BasicSR's ``BaseModel.save_network``/``save_training_state`` write straight to the final
    file name, so a kill during ``torch.save`` leaves a truncated checkpoint that ``--auto_resume``
    then picks."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with atomic_torch_save() as failures:
            result = method(*args, **kwargs)
        if failures:  # BasicSR retried, logged "Still cannot save" and would train on without checkpoints
            from srdiff_basicsr.errors import CheckpointError
            path, error = next(iter(failures.items()))
            raise CheckpointError(f'cannot write the checkpoint {path} ({error}); training stopped. Free the space '
                                  '(or fix the folder) and go on with --auto_resume')
        return result

    return wrapper
