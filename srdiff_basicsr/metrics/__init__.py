from srdiff_basicsr.metrics.lr_psnr import calculate_lr_psnr

__all__ = ['calculate_lr_psnr']
