"""Sampling images of any size: the noise prediction of a large canvas fused from overlapping tiles.

At every step each tile of the HR canvas is denoised with the condition of its own LR region, and the
tiles' noise predictions are averaged with Gaussian weights (highest at a tile's centre, where the
U-Net sees the most context); the sampler then takes one step on the whole canvas (the tiled
aggregation of StableSR, Wang et al. 2023). Any sampler works unchanged: this is a ``denoise_fn``.
The network's memory is that of one batch of tiles, whatever the image size.
"""
import math

import torch

from srdiff_basicsr.errors import TileError


def tile_starts(length, tile, stride, align):
    """Starts of tiles of size ``tile`` covering [0, length): every ``stride`` (rounded down to a
    multiple of ``align``), the last one flush with the end (``length - tile``, also a multiple)."""
    if tile >= length:
        return [0]
    starts = list(range(0, length - tile, max(stride // align * align, align)))
    return starts + [length - tile]


def gaussian_weight(height, width, device, dtype):
    """exp(-d^2 / 2 sigma^2) with sigma = 1/8 of the side: edges weigh exp(-8) of the centre."""
    def axis(n):
        d = (torch.arange(n, device=device, dtype=torch.float64) - (n - 1) / 2) / (n / 8)
        return torch.exp(-0.5 * d**2)
    return (axis(height)[:, None] * axis(width)[None, :]).to(dtype)


class TiledDenoiser:
    """``denoise_fn(x_t, t)`` for a canvas, from ``net(x_tile, t, cond_tile)`` on overlapping tiles.

    Args:
        net: the noise predictor, (x_t, t, cond) -> eps.
        project_condition: (features, lr_up) -> HR condition (``SRDiffUNet.project_condition``); local (a
            transposed convolution reaching one LR pixel further, a 3x3 convolution of lr_up), so each tile's
            condition, projected from its region with a margin of one LR pixel, equals that region of the
            whole image's condition.
        features (list[Tensor]): the encoder's feature maps of the whole LR image.
        lr_up (Tensor): the bicubic upsampling of the whole LR image, as the network takes it.
        scale (int): HR / LR size ratio; tile corners are on the LR grid.
        tile (int): tile side in HR pixels (a multiple of ``divisor`` and of ``scale``).
        overlap (int): HR pixels shared by neighbouring tiles.
        divisor (int): the U-Net's size divisor.
        batch (int): tiles per network call.
    """

    def __init__(self, net, project_condition, features, lr_up, scale, tile, overlap, divisor, batch=1):
        check_tile_options(tile, overlap, scale, divisor, batch)
        self.net, self.project_condition, self.features, self.lr_up = net, project_condition, features, lr_up
        self.scale, self.batch = scale, batch
        lr_h, lr_w = features[0].shape[-2:]
        height, width = lr_h * scale, lr_w * scale
        self.tile_h, self.tile_w = min(tile, height), min(tile, width)
        align = scale * divisor // math.gcd(scale, divisor)  # on the LR grid, and the U-Net's phase kept
        self.boxes = [(top, left) for top in tile_starts(height, self.tile_h, tile - overlap, align)
                      for left in tile_starts(width, self.tile_w, tile - overlap, align)]
        self.weight = gaussian_weight(self.tile_h, self.tile_w, features[0].device, features[0].dtype)
        self.calls = 0

    def tile_condition(self, top, left):
        s = self.scale
        lr_top, lr_left = top // s, left // s
        lr_h, lr_w = self.features[0].shape[-2:]
        y0, x0 = max(lr_top - 1, 0), max(lr_left - 1, 0)
        y1, x1 = min(lr_top + self.tile_h // s + 1, lr_h), min(lr_left + self.tile_w // s + 1, lr_w)
        cond = self.project_condition([f[..., y0:y1, x0:x1] for f in self.features],
                                      self.lr_up[..., y0 * s:y1 * s, x0 * s:x1 * s])
        dy, dx = (lr_top - y0) * s, (lr_left - x0) * s
        return cond[..., dy:dy + self.tile_h, dx:dx + self.tile_w]

    def __call__(self, x_t, t):
        eps = None  # the blended output, as many channels as the network gives (6 for two heads)
        total = torch.zeros(x_t.shape[-2:], device=x_t.device, dtype=x_t.dtype)
        n = x_t.shape[0]
        for i in range(0, len(self.boxes), self.batch):
            boxes = self.boxes[i:i + self.batch]
            crops = torch.cat([x_t[..., top:top + self.tile_h, left:left + self.tile_w] for top, left in boxes])
            conds = torch.cat([self.tile_condition(top, left).expand(n, -1, -1, -1) for top, left in boxes])
            out = self.net(crops, t.repeat(len(boxes)), conds)
            self.calls += 1
            if eps is None:
                eps = x_t.new_zeros(n, out.shape[1], *x_t.shape[-2:])
            for k, (top, left) in enumerate(boxes):
                region = (..., slice(top, top + self.tile_h), slice(left, left + self.tile_w))
                eps[region] += out[k * n:(k + 1) * n] * self.weight
                total[region[1:]] += self.weight
        return eps / total


def tile_options(tile, scale, divisor, where='val.tile'):
    """``{size, overlap, batch}`` (HR pixels; overlap 0 and batch 1 by default) checked against the model,
    or None for None (the whole image at once)."""
    if tile is None:
        return None
    if not isinstance(tile, dict):
        raise TileError(f'{where}: expected {{size, overlap, batch}}, got {tile!r}')
    unknown = sorted(set(tile) - {'size', 'overlap', 'batch'})
    if unknown:
        raise TileError(f'{where}: unknown option(s) {unknown}; known: batch, overlap, size')
    if 'size' not in tile:
        raise TileError(f'{where}.size: missing (tile side in HR pixels)')
    tile = {'overlap': 0, 'batch': 1, **tile}
    check_tile_options(tile['size'], tile['overlap'], scale, divisor, tile['batch'], where)
    return tile


def check_tile_options(tile, overlap, scale, divisor, batch=1, where='tile'):
    if not isinstance(tile, int) or tile <= 0 or tile % divisor or tile % scale:
        raise TileError(f'{where}.size: must be a positive multiple of {divisor} (the U-Net halves it) and of the '
                        f'scale {scale}, got {tile!r}')
    if not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise TileError(f'{where}.overlap: must be an integer from 0 to size - 1 ({tile - 1}), got {overlap!r}')
    if not isinstance(batch, int) or batch < 1:
        raise TileError(f'{where}.batch: must be a positive integer, got {batch!r}')
