from srdiff_basicsr.data.checked_paired_dataset import CheckedPairedImageDataset, DatasetError

__all__ = ['CheckedPairedImageDataset', 'DatasetError']
