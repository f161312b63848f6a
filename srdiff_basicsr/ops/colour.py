"""Colour correction of SR images against their LR input (optional post-processing).

Diffusion samples can drift in colour (a global shift or a low-frequency tint). Both fixes take the
colour from ``reference``, the bicubic upsampling of the LR image, and keep the SR image's detail:

- ``adain``: each channel's mean and standard deviation set to the reference's (adaptive instance
  normalisation, as StableSR's colour fix);
- ``wavelet``: the SR image's high-frequency bands plus the reference's low band, from an a-trous
  decomposition with a dilated 3x3 binomial kernel (StableSR's wavelet colour fix).
Both compute as StableSR's ``scripts/wavelet_color_fix.py`` does, on images in [-1, 1] (its numbers exactly).
"""
import torch
from torch.nn import functional as F

COLOUR_FIXES = ('none', 'adain', 'wavelet')


def adain(sr, reference, eps=1e-5):
    """(N, C, H, W) images; per image and channel, SR's mean and std (unbiased, sqrt(var + eps)) replaced by the
    reference's."""
    sr_mean, sr_var = sr.mean((-2, -1), keepdim=True), sr.var((-2, -1), keepdim=True)
    ref_mean, ref_var = reference.mean((-2, -1), keepdim=True), reference.var((-2, -1), keepdim=True)
    return (sr - sr_mean) / (sr_var + eps).sqrt() * (ref_var + eps).sqrt() + ref_mean


def wavelet_blur(img, dilation):
    """One a-trous smoothing: the 3x3 binomial kernel dilated by ``dilation``, replicate padding."""
    kernel = torch.tensor([[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]], device=img.device, dtype=img.dtype) / 16
    d = dilation
    return F.conv2d(F.pad(img, (d, d, d, d), mode='replicate'), kernel.expand(img.shape[1], 1, 3, 3), dilation=d,
                    groups=img.shape[1])


def wavelet_low(img, levels=5):
    """The low-frequency band after ``levels`` a-trous smoothings (kernel dilated 1, 2, 4, ...)."""
    low = img
    for level in range(levels):
        low = wavelet_blur(low, 2**level)
    return low


def wavelet_fix(sr, reference, levels=5):
    return sr - wavelet_low(sr, levels) + wavelet_low(reference, levels)


def colour_fix(sr, reference, method, clamp=True):
    """``method`` in COLOUR_FIXES of images in [0, 1] (computed in [-1, 1]); the result clamped to [0, 1] (unless
    ``clamp`` is false: StableSR averages its image tiles before it clamps)."""
    if method == 'none':
        return sr
    fixes = {'adain': adain, 'wavelet': wavelet_fix}
    if method not in fixes:
        raise ValueError(f'colour fix must be one of {COLOUR_FIXES}, got {method!r}')
    fixed = (fixes[method](sr * 2 - 1, reference * 2 - 1) + 1) / 2
    return fixed.clamp(0, 1) if clamp else fixed
