"""Lets BasicSR's stock entry points (``python -m basicsr.train``, ``basicsr/train.py``) find SRDiff.

BasicSR only imports its own ``*_arch.py``/``*_model.py`` files, and offers no option, environment
variable or entry point to load a plugin. The ``srdiff_basicsr_hook.pth`` file installed next to
this module calls :func:`install` at interpreter start. That adds a meta-path finder which does
nothing until ``basicsr`` itself is imported; then it applies the compatibility fixes that must
precede BasicSR's own imports and, once ``basicsr`` is loaded, imports ``srdiff_basicsr.plugin`` so its
classes are registered. Interpreter start-up pays one function call; nothing heavy is imported
unless BasicSR is. Set ``SRDIFF_BASICSR_HOOK=0`` to switch it off (the README lists what it changes in BasicSR).
"""
import os
import sys

# No import beyond os and sys at module level: this runs at every interpreter start. The classes
# follow the import protocols by duck typing, as importlib.abc costs milliseconds to import.


class _BasicSRLoader:
    """Wraps the real loader of ``basicsr``: fix imports before it runs, register SRDiff after."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        from srdiff_basicsr.host import compat  # does not import basicsr
        compat.before_basicsr_import()
        self._loader.exec_module(module)
        try:
            import srdiff_basicsr.plugin  # noqa: F401  (registration)
        except Exception as error:  # a broken plugin must not break BasicSR itself
            import warnings
            warnings.warn(f'srdiff_basicsr could not be registered with BasicSR: {error!r}')


class _BasicSRFinder:

    def find_spec(self, fullname, path, target=None):
        if fullname != 'basicsr':
            return None
        sys.meta_path.remove(self)  # fire once; the search below must not find us again
        import importlib.util
        spec = importlib.util.find_spec(fullname)  # whichever finder owns basicsr (site, editable, ...)
        if spec is not None and spec.loader is not None:
            spec.loader = _BasicSRLoader(spec.loader)
        return spec


def install():
    if os.environ.get('SRDIFF_BASICSR_HOOK', '1').lower() in ('0', 'off', 'false', 'no') or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, _BasicSRFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BasicSRFinder())
