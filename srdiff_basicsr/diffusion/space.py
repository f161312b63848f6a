"""The space a model of the family diffuses in: what x0 is for an HR image, and the image an x0 decodes to.

SRDiff, SRADM and ECDP diffuse a rescaled residual over an upsampling of the LR image, in pixels
(``PixelResidualSpace``). A space is one class with these members; a latent one (StableSR's VAE) is another:
- ``reference(lr)``: what the space is relative to, computed once from the LR batch (here lr_up, in [0, 1]);
- ``encode(hr, reference)``: x0 of the HR image (training, the manipulations);
- ``decode(x0, reference)``: the SR image in [0, 1];
- ``shape(reference)``: the shape of x0 and of the noise x_T;
- ``colour_reference(reference)``: the HR-size image in [0, 1] the colour fixes match the SR image to;
- ``factor``: HR pixels per x0 pixel along a side (1 here; 8 for Stable Diffusion's VAE);
- ``clip_x0``: whether a predicted x0 is clamped to [-1, 1] at every step.
"""
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.ops.resize import UPSAMPLERS


class PixelResidualSpace:
    """x0 = (hr - lr_up) * res_rescale, images in [-1, 1] as in the paper, over lr_up, the ``lr_up`` upsampling
    of the LR image (``ops.resize.UPSAMPLERS``: matlab, SRDiff's; bicubic_antialias, ECDP's torchvision resize).
    With ``clip_x0`` (SRDiff) x0 is clamped to [-1, 1]; without it (ECDP, whose residual goes beyond) left whole."""

    factor = 1

    def __init__(self, scale, res_rescale=2.0, clip_x0=True, lr_up='matlab'):
        if lr_up not in UPSAMPLERS:
            raise OptionsError(f'lr_up: must be one of {sorted(UPSAMPLERS)}, got {lr_up!r}')
        self.scale, self.res_rescale, self.clip_x0, self.lr_up = scale, res_rescale, clip_x0, lr_up

    def reference(self, lr):
        return UPSAMPLERS[self.lr_up](lr, self.scale)

    def encode(self, hr, lr_up):
        x0 = ((hr * 2 - 1) - (lr_up * 2 - 1)) * self.res_rescale
        return x0.clamp(-1, 1) if self.clip_x0 else x0

    def decode(self, x0, lr_up):
        sr = (lr_up * 2 - 1) + (x0.clamp(-1, 1) if self.clip_x0 else x0) / self.res_rescale
        return ((sr + 1) / 2).clamp(0, 1)

    def shape(self, lr_up):
        return lr_up.shape

    def colour_reference(self, lr_up):
        return lr_up.clamp(0, 1)
