from srdiff_basicsr.metrics.lpips_metric import calculate_lpips, lpips_network
from srdiff_basicsr.metrics.lr_psnr import calculate_lr_psnr, lr_psnr

__all__ = ['calculate_lpips', 'calculate_lr_psnr', 'lpips_network', 'lr_psnr']
