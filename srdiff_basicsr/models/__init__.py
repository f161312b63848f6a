import srdiff_basicsr.host.basicsr_setup  # noqa: F401  (BasicSR fixed and our archs registered before these modules import it)
from srdiff_basicsr.models.cfw_model import CFWModel
from srdiff_basicsr.models.degraded_training import DegradedSRModel
from srdiff_basicsr.models.srdiff_model import SRDiffModel
from srdiff_basicsr.models.stablesr_model import StableSRModel

__all__ = ['CFWModel', 'DegradedSRModel', 'SRDiffModel', 'StableSRModel']
