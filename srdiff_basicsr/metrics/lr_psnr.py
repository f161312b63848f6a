import numpy as np
import torch
from basicsr.data.transforms import mod_crop
from basicsr.utils.registry import METRIC_REGISTRY

from srdiff_basicsr.ops.resize import imresize, imresize_uint8


def lr_psnr(sr, lr, scale):
    """SRDiff's consistency metric: PSNR (dB) between the SR image downscaled by 1/scale with
    MATLAB-style bicubic and the LR image. Both uint8 HWC (any channel order, the same for
    both); the downscaled SR is compared unrounded, so a perfect round trip is not capped by 8-bit
    quantisation of the SR image itself."""
    sr_t = torch.from_numpy(np.ascontiguousarray(sr)).permute(2, 0, 1).double() / 255
    down = imresize(sr_t, 1 / scale).clamp(0, 1).permute(1, 2, 0).numpy() * 255
    if down.shape != lr.shape:
        raise ValueError(f'LR-PSNR: SR {sr.shape} downscaled by {scale} is {down.shape}, but the LR is {lr.shape}')
    mse = np.mean((down - lr.astype(np.float64))**2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0**2 / mse)


@METRIC_REGISTRY.register()
def calculate_lr_psnr(img, img2=None, scale=None, lq=None, lr_from_hr=False, **kwargs):
    """LR-PSNR as a BasicSR metric: ``img`` is the SR, ``img2`` the HR (uint8, BasicSR's metric data; none for a test
    set without HR images, whose input is then the LR).

    The LR is ``lq`` when the model passes it; otherwise it is made from the HR with MATLAB bicubic,
    which is the input LR itself for datasets made that way (up to 8-bit rounding).
    Options: scale (required); lr_from_hr: true compares with the HR's bicubic LR even when the model passes its
    input, e.g. for degraded inputs (noise, JPEG) whose clean version the SR should match, not their artefacts.
    """
    if scale is None:
        raise ValueError('calculate_lr_psnr needs `scale` in its val.metrics options')
    if img2 is None and (lq is None or lr_from_hr):
        raise ValueError('calculate_lr_psnr: no HR image to make the LR of' + (' (lr_from_hr)' if lr_from_hr else ''))
    if lq is None or lr_from_hr:
        lq = imresize_uint8(mod_crop(img2, scale), 1 / scale)
    return lr_psnr(img, lq, scale)
