import numpy as np
import torch

from srdiff_basicsr.ops.resize import imresize


def calculate_lr_psnr(sr, lr, scale):
    """SRDiff's consistency metric: PSNR (dB) between the SR image downscaled by 1/scale with
    MATLAB-style bicubic and the input LR image. Both uint8 HWC (any channel order, the same for
    both); the downscaled SR is compared unrounded, so a perfect round trip is not capped by 8-bit
    quantisation of the SR image itself."""
    sr_t = torch.from_numpy(np.ascontiguousarray(sr)).permute(2, 0, 1).double() / 255
    down = imresize(sr_t, 1 / scale).clamp(0, 1).permute(1, 2, 0).numpy() * 255
    if down.shape != lr.shape:
        raise ValueError(f'LR-PSNR: SR {sr.shape} downscaled by {scale} is {down.shape}, but the LR is {lr.shape}')
    mse = np.mean((down - lr.astype(np.float64))**2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0**2 / mse)
