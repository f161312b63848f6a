from srdiff_basicsr.data.bicubic_dataset import BicubicSRDataset
from srdiff_basicsr.data.checked_paired_dataset import CheckedPairedImageDataset

__all__ = ['BicubicSRDataset', 'CheckedPairedImageDataset']
