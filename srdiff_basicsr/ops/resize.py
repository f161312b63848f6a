"""MATLAB-style bicubic resize (``imresize``) for batched tensors, on any device.

SR datasets make their LR images with MATLAB's ``imresize`` (cubic kernel a = -0.5, antialiasing
when shrinking, symmetric padding). BasicSR ships a port that takes one CPU image at a time; here
the same separable filter is built once per (size, scale) as two dense matrices, so a whole
NCHW batch is resized with two matrix products on the batch's device.
"""
import functools
import math

import numpy as np
import torch
from torch.nn import functional as F


def _cubic(x):
    """MATLAB's bicubic kernel (Keys, a = -0.5)."""
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def _resize_matrix(in_len, out_len, scale, antialiasing=True):
    """(out_len, in_len) float64 matrix M with out = M @ in along one axis."""
    shrink_aa = scale < 1 and antialiasing
    kernel_width = 4.0 / scale if shrink_aa else 4.0
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if shrink_aa else _cubic(dist)
    weights = weights / weights.sum(1, keepdim=True)
    # symmetric padding: index 0 -> 1, -1 -> 2, in_len + 1 -> in_len, ..., repeated as often as a tiny
    # input needs (one pixel: every index is that pixel)
    idx = (idx.long() - 1) % (2 * in_len)
    idx = torch.where(idx >= in_len, 2 * in_len - idx - 1, idx)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, idx, weights)
    return matrix


def imresize(img, scale, antialiasing=True):
    """Resize ``img`` (N, C, H, W) or (C, H, W) by ``scale`` like MATLAB's ``imresize(img, scale)``.

    The output is ``ceil(H * scale) x ceil(W * scale)``; values are not clamped (bicubic overshoots).
    """
    if img.dim() not in (3, 4) or not img.is_floating_point():
        raise ValueError(f'imresize expects a float (N, C, H, W) or (C, H, W) tensor, got {tuple(img.shape)} '
                         f'{img.dtype}')
    in_h, in_w = img.shape[-2:]
    out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    mat_h = _resize_matrix(in_h, out_h, float(scale), antialiasing).to(img.device, img.dtype)
    mat_w = _resize_matrix(in_w, out_w, float(scale), antialiasing).to(img.device, img.dtype)
    return mat_h @ img @ mat_w.T


def imresize_uint8(img, scale):
    """``imresize`` for one uint8 HWC image (any channel order): float64 filtering, then rounded
    back to uint8, as SR datasets store their LR images."""
    tensor = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).double() / 255
    return (imresize(tensor, scale).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _torch_resize(mode, antialias):
    def upsample(lr, scale):
        return F.interpolate(lr, scale_factor=scale, mode=mode, align_corners=False, antialias=antialias)
    return upsample


# ``diffusion.lr_up``: the upsampling the residual is taken against (or, for a latent model, the image it
# encodes). bicubic_antialias is torchvision's ``resize(..., BICUBIC)`` since 0.17 (ECDP's; the a = -0.5 kernel
# even when upsampling), bicubic its resize before 0.17 (a = -0.75; StableSR's tiled script), bilinear_antialias
# torchvision's default ``Resize`` (StableSR's sr_val_ddpm_text_T_vqganfin_old.py), matlab MATLAB's imresize
# (SRDiff's, and this project's default)
UPSAMPLERS = {'matlab': imresize, 'bicubic': _torch_resize('bicubic', False),
              'bicubic_antialias': _torch_resize('bicubic', True),
              'bilinear_antialias': _torch_resize('bilinear', True)}
