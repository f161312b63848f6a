"""SRDiff and its family of diffusion super-resolution models.

The method layer (``archs``, ``diffusion``, ``ops``, ``pipeline``) needs no BasicSR; ``import srdiff_basicsr.plugin``
(done by the import hook whenever BasicSR is imported, and by the entry points) registers the BasicSR side.
"""
__version__ = "0.1.0"

__all__ = ['SRDiffPipeline']


def __getattr__(name):
    # lazy, so that ``import srdiff_basicsr`` (the hook, the version) does not import torch
    if name == 'SRDiffPipeline':
        from srdiff_basicsr.pipeline import SRDiffPipeline
        return SRDiffPipeline
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
