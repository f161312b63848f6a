from srdiff_basicsr.models.options import OptionsError
from srdiff_basicsr.models.srdiff_model import SRDiffModel

__all__ = ['OptionsError', 'SRDiffModel']
