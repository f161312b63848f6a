from srdiff_basicsr.models.distill_model import SRDiffDistillModel
from srdiff_basicsr.models.srdiff_model import SRDiffModel

__all__ = ['SRDiffDistillModel', 'SRDiffModel']
