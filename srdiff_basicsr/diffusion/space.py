"""The space a model of the family diffuses in: what x0 is for an HR image, and the image an x0 decodes to.

SRDiff, SRADM and ECDP diffuse a rescaled residual over an upsampling of the LR image, in pixels
(``PixelResidualSpace``). A space is one class with these members; a latent one (StableSR's VAE) is another:
- ``reference(lr, noise=None)``: what the space is relative to, computed once from the LR batch (here lr_up, in
  [0, 1]; ``noise(shape)``: the draws it may need, from the call's generator);
- ``encode(hr, reference)``: x0 of the HR image (training, the manipulations);
- ``decode(x0, reference, clamp=True)``: the SR image in [0, 1] (unclamped: for the colour fixes, which work on
  the whole range as StableSR's);
- ``shape(reference)``: the shape of x0 and of the noise x_T;
- ``colour_reference(reference)``: the HR-size image in [0, 1] the colour fixes match the SR image to;
- ``factor``: HR pixels per x0 pixel along a side (1 here; 8 for Stable Diffusion's VAE);
- ``clip_x0``: whether a predicted x0 is clamped to [-1, 1] at every step;
- ``networks``: the networks it runs (they follow the pipeline's device);
- ``canvas_grid``, ``tile_weights``: the x0 pixels a tile's corner may sit on, and how tiles are blended
  (``diffusion.tiling``).
"""
import copy
from dataclasses import dataclass

import torch

from srdiff_basicsr.diffusion.tiling import scaled_box, tiled_map
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.ops.resize import UPSAMPLERS


class PixelResidualSpace:
    """x0 = (hr - lr_up) * res_rescale, images in [-1, 1] as in the paper, over lr_up, the ``lr_up`` upsampling
    of the LR image (``ops.resize.UPSAMPLERS``: matlab, SRDiff's; bicubic_antialias, ECDP's torchvision resize).
    With ``clip_x0`` (SRDiff) x0 is clamped to [-1, 1]; without it (ECDP, whose residual goes beyond) left whole."""

    factor, networks, tile_weights, tiles_keep_phase = 1, (), 'gaussian', True

    def __init__(self, scale, res_rescale=2.0, clip_x0=True, lr_up='matlab'):
        if lr_up not in UPSAMPLERS:
            raise OptionsError(f'lr_up: must be one of {sorted(UPSAMPLERS)}, got {lr_up!r}')
        self.scale, self.res_rescale, self.clip_x0, self.lr_up = scale, res_rescale, clip_x0, lr_up
        self.canvas_grid = scale  # tiles start on the LR grid (their conditions are crops of the LR's)

    def reference(self, lr, noise=None):
        return UPSAMPLERS[self.lr_up](lr, self.scale)

    def encode(self, hr, lr_up):
        x0 = ((hr * 2 - 1) - (lr_up * 2 - 1)) * self.res_rescale
        return x0.clamp(-1, 1) if self.clip_x0 else x0

    def decode(self, x0, lr_up, clamp=True):
        sr = (lr_up * 2 - 1) + (x0.clamp(-1, 1) if self.clip_x0 else x0) / self.res_rescale
        return ((sr + 1) / 2).clamp(0, 1) if clamp else (sr + 1) / 2

    def shape(self, lr_up):
        return lr_up.shape

    def lr_x0(self, lr_up):
        return torch.zeros_like(lr_up)  # the upsampled LR's residual over itself

    def colour_reference(self, lr_up):
        return lr_up.clamp(0, 1)


@dataclass
class LatentReference:
    """What a latent space's sampling is relative to: the upsampled LR image (in [0, 1]), its latent (scaled)
    and the VAE encoder's features of it (for CFW)."""
    lr_up: torch.Tensor
    latent: torch.Tensor
    features: list


class VAELatentSpace:
    """x0 = scale_factor x a draw of the VAE posterior of the image in [-1, 1] (StableSR, Stable Diffusion's
    latent space, ``scale_factor`` 0.18215); decoding with CFW at the fidelity weight ``fidelity`` (w: 0 the plain
    decoder, 1 closest to the LR image; StableSR's scripts: 0.5). The LR image is upsampled to the output size by
    ``lr_up`` (``ops.resize.UPSAMPLERS``; StableSR's old script: torchvision's bilinear ``Resize``) and encoded
    once, its latent the condition of the time-aware encoder; ``posterior``: sample (the official) or mean;
    ``vae_tile``: {size, overlap} in output pixels (multiples of 8) to encode and decode on Gaussian-blended tiles,
    memory then bounded by the tile (each tile's GroupNorms see only the tile, so seams may differ slightly).

    Args:
        vae (CFWAutoencoder): the autoencoder (``encode``, ``decode``, ``factor``).
    """

    clip_x0, canvas_grid, tile_weights, tiles_keep_phase = False, 1, 'stablesr', False  # StableSR's canvas

    def __init__(self, vae, scale, scale_factor=0.18215, fidelity=0.5, lr_up='bilinear_antialias', posterior='sample',
                 vae_tile=None):
        if lr_up not in UPSAMPLERS:
            raise OptionsError(f'lr_up: must be one of {sorted(UPSAMPLERS)}, got {lr_up!r}')
        if posterior not in ('sample', 'mean'):
            raise OptionsError(f"posterior: must be sample or mean, got {posterior!r}")
        self.vae, self.scale, self.scale_factor, self.fidelity = vae, scale, scale_factor, fidelity
        self.lr_up, self.posterior = lr_up, posterior
        self.upsample = UPSAMPLERS[lr_up]
        self.factor = vae.factor
        self.networks = (vae, )
        self.vae_tile = vae_tile  # None, or {size, overlap} in output pixels: the VAE runs on blended tiles

    def _encoded(self, image):
        """((mean, logvar), features) of images in [-1, 1], on tiles when ``vae_tile`` is set."""
        if self.vae_tile is None:
            return self.vae.encode(image)

        def encode(top, left, h, w):
            (mean, logvar), features = self.vae.encode(image[..., top:top + h, left:left + w])
            return [mean, logvar, *features]
        mean, logvar, *features = tiled_map(encode, *image.shape[-2:], self.vae_tile['size'],
                                            self.vae_tile['overlap'], self.factor)
        return (mean, logvar), features

    def _decoded(self, z, features):
        if self.vae_tile is None:
            return self.vae.decode(z, features, self.fidelity)
        f = self.factor

        def decode(top, left, h, w):
            crops = [feature[(..., *scaled_box(top, left, h, w, feature.shape[-2] / z.shape[-2]))]
                     for feature in features]
            return [self.vae.decode(z[..., top:top + h, left:left + w], crops, self.fidelity)]
        return tiled_map(decode, *z.shape[-2:], self.vae_tile['size'] // f, self.vae_tile['overlap'] // f)[0]

    def _latent(self, image, noise):
        """(scaled latent, CFW features) of images in [0, 1]; ``noise(shape)`` gives the posterior draw."""
        (mean, logvar), features = self._encoded(image * 2 - 1)
        z = mean if self.posterior == 'mean' else mean + torch.exp(0.5 * logvar) * noise(mean.shape)
        return self.scale_factor * z, features

    def at_output_size(self):
        """This space for images already at the output size (no upsampling, scale 1): StableSR's scripts upsample
        the LR themselves."""
        space = copy.copy(self)
        space.scale, space.upsample = 1, (lambda image, scale: image)
        return space

    def reference(self, lr, noise=None):
        lr_up = self.upsample(lr, self.scale).clamp(0, 1)
        latent, features = self._latent(lr_up, noise or (lambda shape: torch.randn(shape, device=lr.device)))
        return LatentReference(lr_up, latent, features)

    def encode(self, hr, reference):
        return self._latent(hr, lambda shape: torch.randn(shape, device=hr.device))[0]

    def decode(self, x0, reference, clamp=True):
        image = (self._decoded(x0 / self.scale_factor, reference.features) + 1) / 2
        return image.clamp(0, 1) if clamp else image

    def shape(self, reference):
        return reference.latent.shape

    def lr_x0(self, reference):
        return reference.latent

    def colour_reference(self, reference):
        return reference.lr_up


VAE_FACTOR = 8  # output pixels per latent pixel of Stable Diffusion's VAE: a VAE tile is whole latent pixels


def valid_vae_tile(v):
    """``vae_tile``: None, or {size, overlap} in output pixels, multiples of ``VAE_FACTOR``, overlap < size."""
    return v is None or (isinstance(v, dict) and set(v) == {'size', 'overlap'} and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 and n % VAE_FACTOR == 0 for n in v.values())
        and 0 <= v['overlap'] < v['size'])
