"""The few fixes BasicSR 1.4.2 (the last release, 2022-08) needs on today's torch/torchvision.

Each fix names the upstream problem it works around and is covered by ``tests/test_compat.py``.
``before_basicsr_import`` must run before ``basicsr`` is imported; ``after_basicsr_import`` patches
the imported modules. Both are idempotent.
"""
import functools
import math
import os
import sys
import warnings
from collections import OrderedDict
from os import path as osp


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
    """The fixes of BasicSR's modules, which every program in the environment then sees (the README's table lists
    them with their effect on other BasicSR programs): a launcher that works without GPUs, the training script's
    epoch count, outputs of ``python -m basicsr.train`` in the cwd, options read as data, Real-ESRGAN's models on
    any device and layout. (What this project adds to the training script is ``train_script``'s.)"""
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options

    from srdiff_basicsr.host import distributed

    basicsr.utils.dist_util.init_dist = basicsr.utils.options.init_dist = distributed.init_dist
    wrap_once(basicsr.train, 'create_train_val_dataloader', _with_epochs_of_the_loader)
    # ``python -m basicsr.train`` then finds the module imported before runpy runs it as __main__, and warns of
    # "unpredictable behaviour"; the names it patches are patched in __main__ too (see parse_options below)
    warnings.filterwarnings('ignore', message="'basicsr.train' found in sys.modules", category=RuntimeWarning)
    wrap_once(basicsr.utils.options, 'parse_options', _with_root_outside_site_packages)
    basicsr.utils.options.ordered_yaml = safe_ordered_yaml
    basicsr.utils.options._postprocess_yml_value = literal_yml_value
    _filter2d_on_any_layout()
    _realesrgan_models_on_their_device()


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


def _filter2d_on_any_layout():
    """BasicSR's ``filter2D`` reshapes the padded image with ``view``, which fails ("view size is not compatible
    with input tensor's size and stride") on a tensor that is not contiguous, and ``DiffJPEG`` returns one (a
    channels-last crop): Real-ESRGAN's second blur, on the first JPEG's output, failed for batches of 2 or more.
    The fixed function filters a contiguous copy; the modules that imported the name get it too."""
    from basicsr.models import realesrgan_model, realesrnet_model
    from basicsr.utils import img_process_util

    def contiguous_input(filter2d):
        @functools.wraps(filter2d)
        def wrapper(img, kernel):
            return filter2d(img.contiguous(), kernel.contiguous())
        return wrapper

    wrap_once(img_process_util, 'filter2D', contiguous_input)
    for module in (realesrgan_model, realesrnet_model):
        module.filter2D = img_process_util.filter2D


def _realesrgan_models_on_their_device():
    """BasicSR's ``RealESRNetModel`` and ``RealESRGANModel`` put their JPEG simulator, sharpener and training-pair
    pool on CUDA with ``.cuda()`` whatever ``num_gpu`` says: on a machine without CUDA they fail when built. Here
    they are made on the model's device (BasicSR's ``self.device``), the rest of each model unchanged."""
    from basicsr.models.realesrgan_model import RealESRGANModel
    from basicsr.models.realesrnet_model import RealESRNetModel
    from basicsr.utils import DiffJPEG, USMSharp

    for model in (RealESRNetModel, RealESRGANModel):
        if getattr(model.__init__, '_srdiff', False):
            continue
        base = model.__mro__[1]  # SRModel, SRGANModel: what their __init__ calls before the .cuda() lines

        def __init__(self, opt, base=base):
            base.__init__(self, opt)
            self.jpeger = DiffJPEG(differentiable=False).to(self.device)
            self.usm_sharpener = USMSharp().to(self.device)
            self.queue_size = opt.get('queue_size', 180)

        def _dequeue_and_enqueue(self, original=model._dequeue_and_enqueue):
            if not hasattr(self, 'queue_lr'):  # the empty pool, made here so that the original skips its .cuda()
                batch = self.lq.size(0)
                assert self.queue_size % batch == 0, f'queue size {self.queue_size} should be divisible by batch size {batch}'
                self.queue_lr = self.lq.new_zeros((self.queue_size, *self.lq.shape[1:]))
                self.queue_gt = self.gt.new_zeros((self.queue_size, *self.gt.shape[1:]))
                self.queue_ptr = 0
            original(self)

        __init__._srdiff = True
        model.__init__ = __init__
        model._dequeue_and_enqueue = _dequeue_and_enqueue


def wrap_once(owner, name, wrapper):
    """``owner.name = wrapper(owner.name)``, once per wrapper (a function may carry several)."""
    original = getattr(owner, name)
    applied = getattr(original, '_srdiff_wrappers', ())
    if wrapper.__qualname__ not in applied:
        wrapped = wrapper(original)
        wrapped._srdiff_wrappers = (*applied, wrapper.__qualname__)
        setattr(owner, name, wrapped)


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


def stock_script():
    """BasicSR's training or test script when it runs as ``__main__`` (``python -m basicsr.train``, a checkout's
    ``basicsr/train.py``), else None: it defines its own copies of the names patched in ``basicsr.train``."""
    main = sys.modules.get('__main__')
    main_file = getattr(main, '__file__', None) or ''
    return main if main_file.endswith((osp.join('basicsr', 'train.py'), osp.join('basicsr', 'test.py'))) else None


def _with_root_outside_site_packages(parse_options):
    """``python -m basicsr.train`` (and ``basicsr.test``) on an installed BasicSR take the parent of
    the installed package, i.e. site-packages, as root_path, and write experiments/ and results/
    there. The stock scripts, run as ``__main__``, import ``parse_options`` after this patch, so
    redirecting such a root to the current directory fixes both stock entry points.
    (tb_logger/ still follows the unpatched root there; use ``python -m srdiff_basicsr.train``.)
    ``parse_options`` is the first thing their pipeline calls: the epoch count is fixed in their own copy here."""

    @functools.wraps(parse_options)
    def wrapper(root_path, is_train=True):
        import basicsr
        if osp.abspath(root_path) == osp.dirname(osp.dirname(osp.abspath(basicsr.__file__))) and \
                not osp.isfile(osp.join(root_path, 'setup.py')):  # an installed package, not a checkout
            root_path = os.getcwd()
        script = stock_script()
        if script is not None and hasattr(script, 'create_train_val_dataloader'):
            wrap_once(script, 'create_train_val_dataloader', _with_epochs_of_the_loader)
        return parse_options(root_path, is_train)

    return wrapper
