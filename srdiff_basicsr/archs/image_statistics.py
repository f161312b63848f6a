"""Sums over the whole image's pixels for the networks' non-local ops, also when the image runs in tiles.

GroupNorm (ECDP) and the official linear attention (``use_attn``) reduce over every pixel of a feature map;
run on a tile they would see the tile's statistics only. While a tiled denoiser runs all tiles of a canvas
in one batch it sets a ``TileReduction``: each tile then counts the pixels of its own core (a partition of
the canvas, so every pixel is counted once) and the sums are combined over the tiles of each sample, so
every tile is normalised (or attends) with the whole image's statistics, as tiled VAEs do. Without one
(a whole image) the ops run as they always did.
"""
import contextvars
from contextlib import contextmanager

import torch
from torch import nn

_REDUCTION = contextvars.ContextVar('tile_reduction', default=None)


class TileReduction:
    """The tiles of one network batch: ``cores[i]`` = (top, bottom, left, right), tile i's core in its own
    HR-pixel frame, for a batch of ``len(cores) * samples`` rows (tile-major: tile i's samples are rows
    i * samples ... i * samples + samples - 1) of tiles of ``height`` x ``width`` HR pixels."""

    def __init__(self, cores, samples, height, width):
        self.cores, self.samples, self.height, self.width = cores, samples, height, width
        self._masks = {}  # one per level: every normalisation of the level asks again

    def mask(self, height, width, device, dtype):
        """(rows, 1, height, width): 1 on each row's core at a level of this size, 0 elsewhere."""
        key = (height, width, device, dtype)
        if key not in self._masks:
            factor = self.height // height  # the level's downscaling; tiles are multiples of the U-Net's divisor
            mask = torch.zeros(len(self.cores), 1, height, width, device=device, dtype=dtype)
            for i, (top, bottom, left, right) in enumerate(self.cores):
                mask[i, :, top // factor:bottom // factor, left // factor:right // factor] = 1
            self._masks[key] = mask.repeat_interleave(self.samples, dim=0)
        return self._masks[key]

    def combine(self, x, op='sum'):
        """Per-row values (rows, ...) combined (summed, or their maximum) over the tiles of each sample and given
        back to every row."""
        tiles = x.reshape(len(self.cores), self.samples, *x.shape[1:])
        combined = tiles.sum(0) if op == 'sum' else tiles.amax(0)
        return combined.repeat(len(self.cores), *([1] * (x.dim() - 1)))


def tile_reduction():
    """The ``TileReduction`` in force, or None for a whole image."""
    return _REDUCTION.get()


@contextmanager
def reducing_over_tiles(reduction):
    token = _REDUCTION.set(reduction)
    try:
        yield
    finally:
        _REDUCTION.reset(token)


def pixel_sum(x, reduction):
    """The sum of x (rows, ..., h, w) over the whole image's pixels: each tile's core, combined."""
    rows, h, w = x.shape[0], *x.shape[-2:]
    mask = reduction.mask(h, w, x.device, x.dtype).reshape(rows, *([1] * (x.dim() - 3)), h, w)
    return reduction.combine((x * mask).sum((-2, -1), keepdim=True))


def needs_image_statistics(network):
    """Whether ``network`` has an op that reduces over the whole image (its tiles must then run in one batch)."""
    return any(getattr(module, 'image_statistics', False) for module in network.modules())


class ImageGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and state dict) whose statistics are the whole image's when tiled."""

    image_statistics = True

    def forward(self, x):
        reduction = tile_reduction()
        if reduction is None:
            return super().forward(x)
        rows, channels, h, w = x.shape
        grouped = x.reshape(rows, self.num_groups, channels // self.num_groups, h, w)
        count = pixel_sum(x.new_ones(rows, 1, 1, h, w), reduction) * (channels // self.num_groups)
        mean = pixel_sum(grouped.sum(2, keepdim=True), reduction) / count
        var = pixel_sum(((grouped - mean)**2).sum(2, keepdim=True), reduction) / count  # two passes, as torch
        normed = ((grouped - mean) * torch.rsqrt(var + self.eps)).reshape(rows, channels, h, w)
        return normed * self.weight[:, None, None] + self.bias[:, None, None] if self.affine else normed
