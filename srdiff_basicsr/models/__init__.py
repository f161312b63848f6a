from srdiff_basicsr.models.srdiff_model import SRDiffModel

__all__ = ['SRDiffModel']
