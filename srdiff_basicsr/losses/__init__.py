import srdiff_basicsr.host.basicsr_setup  # noqa: F401  (BasicSR fixed and our archs registered before these modules import it)
from srdiff_basicsr.losses.lpips_loss import LPIPSLoss

__all__ = ['LPIPSLoss']
