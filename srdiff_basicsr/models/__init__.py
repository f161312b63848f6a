from srdiff_basicsr.models.srdiff_model import OptionsError, SRDiffModel

__all__ = ['OptionsError', 'SRDiffModel']
