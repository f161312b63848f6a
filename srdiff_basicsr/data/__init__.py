import srdiff_basicsr.host.basicsr_setup  # noqa: F401  (BasicSR fixed and our archs registered before these modules import it)
from srdiff_basicsr.data.bicubic_dataset import BicubicSRDataset
from srdiff_basicsr.data.cfw_latent_dataset import CFWLatentDataset
from srdiff_basicsr.data.checked_paired_dataset import CheckedPairedImageDataset

__all__ = ['BicubicSRDataset', 'CFWLatentDataset', 'CheckedPairedImageDataset']
