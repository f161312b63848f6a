"""Sampling images of any size: the network's prediction on a large canvas fused from overlapping tiles.

At every step the network runs on each tile of the canvas with the condition of the tile's own region, and
the tiles' predictions are averaged with Gaussian weights (highest at a tile's centre, where the U-Net sees the
most context); the sampler then takes one step on the whole canvas (the tiled aggregation of StableSR, Wang et
al. 2023). Any sampler and parametrization work unchanged: this is a network, (x_t, t) -> output.
The network's memory is that of one batch of tiles, whatever the image size, except for a network with
whole-image statistics (GroupNorm, global attention), whose tiles run in one batch to share them.

On a latent space (StableSR) the canvas is the latent, tiles are in latent pixels and their conditions the time-aware
encoder's maps of their latent box, as StableSR's canvas sampler.

Exact where the network is (to float round-off, away from the tiles' borders, whose convolutions see zero
padding and which the Gaussian weights fade out): each tile's condition is a crop of the whole image's, tiles
start on the grid of every window attention, and whole-image statistics are computed across the tiles.
"""
import math

import torch

from srdiff_basicsr.archs.image_statistics import TileReduction, reducing_over_tiles
from srdiff_basicsr.errors import TileError
from srdiff_basicsr.option_spec import Option, checked_options, must_be


def tile_spans(length, tile, stride, align):
    """(start, size) of tiles of size ``tile`` covering [0, length), every ``stride`` (rounded down to a multiple
    of ``align``), each start a multiple of ``align``: the last one flush with the end when ``length - tile`` is
    one, else at the last multiple before it and as much longer (less than ``align``) as reaches the end."""
    if tile >= length:
        return [(0, length)]
    starts = list(range(0, length - tile, max(stride // align * align, align)))
    last = (length - tile) // align * align
    starts = [start for start in starts if start < last] + [last]
    return [(start, tile) for start in starts[:-1]] + [(last, length - last)]


def tile_cores(spans, align):
    """(begin, end) of each tile's core, relative to its start: a partition of the canvas, split in the middle
    of each overlap (on a multiple of ``align``), for the statistics of the whole image."""
    bounds = [0]
    for (start, _), (prev_start, prev_size) in zip(spans[1:], spans[:-1]):
        bounds.append(max(start, (start + prev_start + prev_size) // 2 // align * align))
    bounds.append(spans[-1][0] + spans[-1][1])
    return [(begin - start, end - start) for (start, _), begin, end in zip(spans, bounds[:-1], bounds[1:])]


def gaussian_weight(height, width, device, dtype):
    """exp(-d^2 / 2 sigma^2) with sigma = 1/8 of the side: edges weigh exp(-8) of the centre."""
    def axis(n):
        d = (torch.arange(n, device=device, dtype=torch.float64) - (n - 1) / 2) / (n / 8)
        return torch.exp(-0.5 * d**2)
    return (axis(height)[:, None] * axis(width)[None, :]).to(dtype)


def stablesr_weight(height, width, device, dtype, var=0.01):
    """StableSR's tile weights (its ``_gaussian_weights``): exp(-(x - m)^2 / n^2 / (2 var)) / sqrt(2 pi var) per
    axis, float64, with the midpoints it uses, (width - 1) / 2 across but height / 2 down (sigma = n / 10)."""
    def axis(n, middle):
        x = torch.arange(n, device=device, dtype=torch.float64)
        return torch.exp(-(x - middle)**2 / n**2 / (2 * var)) / math.sqrt(2 * math.pi * var)
    return torch.outer(axis(height, height / 2), axis(width, (width - 1) / 2)).to(dtype)


# ``tile.weights``: how the tiles' outputs are blended
TILE_WEIGHTS = {'gaussian': gaussian_weight, 'stablesr': stablesr_weight}
# ``val.tile`` / ``--tile``: the size's and overlap's fit with the model is checked by ``tile_options``
TILE_OPTIONS = {
    'size': Option(None, "tile side in output pixels: a multiple of the U-Net's divisor, the scale (and window grid)"),
    'overlap': Option(0, 'pixels neighbouring tiles share, blended (below size)'),
    'batch': Option(1, 'tiles per network evaluation', must_be(lambda v: isinstance(v, int) and v >= 1,
                                                                'a positive integer')),
    'weights': Option('gaussian', "how overlaps blend: gaussian, or stablesr (StableSR's tile weights; a latent "
                                  "space's default)", must_be(lambda v: v in TILE_WEIGHTS, f'one of {sorted(TILE_WEIGHTS)}')),
}


def batched(conditions, n):
    """The conditions of several tiles as one batch: tensors (expanded to ``n`` rows each) concatenated, and
    tuples and dicts of them (StableSR's (context, {width: map})) element by element."""
    first = conditions[0]
    if isinstance(first, tuple):
        return tuple(batched(list(parts), n) for parts in zip(*conditions))
    if isinstance(first, dict):
        return {key: batched([c[key] for c in conditions], n) for key in first}
    return torch.cat([c.expand(n, *c.shape[1:]) for c in conditions])


class TiledNetwork:
    """The network's output at (x_t, t) for a whole canvas, from ``net(x_tile, t, cond_tile)`` on overlapping tiles.

    Args:
        net: (x, t, cond) -> output (``condition.timed_network``).
        condition: ``at(t, box)`` gives a tile's condition (``diffusion.condition``).
        height, width (int): the canvas (x_t's size: HR pixels for a pixel space, latent pixels for a latent one).
        scale (int): the canvas pixels between the corners a tile may start at (the space's ``canvas_grid``: the
            scale for a pixel space, so that tiles start on the LR grid; 1 for a latent one).
        tile (int): tile side in canvas pixels (a multiple of ``divisor``, ``grid`` and ``scale``).
        overlap (int): canvas pixels shared by neighbouring tiles.
        divisor (int): the U-Net's size divisor.
        batch (int): tiles per network call.
        grid (int): HR pixels between the window-grid lines of the network's window attention (1: none); tiles
            start on them, so each tile's windows are the whole image's.
        image_statistics (bool): the network reduces over the whole image (GroupNorm, global attention): all
            tiles run in one batch, each counting its core (``archs.image_statistics``), so the statistics
            are the whole image's; memory is then that of the whole canvas.
        weights (str): how tile outputs are blended (``TILE_WEIGHTS``: gaussian, sigma 1/8 of the side; stablesr,
            StableSR's).
        keep_phase (bool): tiles start on multiples of the U-Net's divisor, so that each tile computes what the
            whole image would there (SRDiff's pixel tiles); without it they start anywhere on the grid, the last
            one flush with the end (StableSR's latent canvas), and the canvas need not be a multiple of the divisor.
    """

    def __init__(self, net, condition, height, width, scale, tile, overlap, divisor, batch=1, grid=1,
                 image_statistics=False, weights='gaussian', keep_phase=True):
        check_tile_options(tile, overlap, scale, divisor, batch, grid=grid)
        self.net, self.condition = net, condition
        # on the LR grid and the window grid, and (keep_phase) the U-Net's divisor
        align = tile_multiple(scale, divisor, grid) if keep_phase else math.lcm(scale, grid)
        rows = tile_spans(height, tile, tile - overlap, align)
        cols = tile_spans(width, tile, tile - overlap, align)
        self.boxes = [(top, left, h, w) for top, h in rows for left, w in cols]
        row_cores, col_cores = tile_cores(rows, divisor), tile_cores(cols, divisor)
        self.cores = [(*row, *col) for row in row_cores for col in col_cores]
        by_shape = {}
        for index, (_, _, h, w) in enumerate(self.boxes):
            by_shape.setdefault((h, w), []).append(index)
        if image_statistics and len(by_shape) > 1:
            raise TileError(f'tile: a network with both window attention and whole-image statistics needs the '
                            f'image ({height}x{width} HR pixels) minus the tile size to be a multiple of {align}')
        self.batches = []  # tile indices per network call, of one shape
        for group in by_shape.values():
            size = len(group) if image_statistics else batch
            self.batches += [group[i:i + size] for i in range(0, len(group), size)]
        self.shapes = list(by_shape)
        self.weight_function = TILE_WEIGHTS[weights]
        self.weights = None  # per tile shape, on the canvas's device and dtype (made at the first call)
        self.image_statistics = image_statistics
        self.calls = 0

    def __call__(self, x_t, t):
        out_canvas = None  # the blended output, as many channels as the network gives (6 for two heads)
        total = torch.zeros(x_t.shape[-2:], device=x_t.device, dtype=x_t.dtype)
        n = x_t.shape[0]
        if self.weights is None:
            self.weights = {shape: self.weight_function(*shape, x_t.device, x_t.dtype) for shape in self.shapes}
        for indices in self.batches:
            boxes = [self.boxes[i] for i in indices]
            _, _, h, w = boxes[0]
            crops = torch.cat([x_t[..., top:top + h, left:left + w] for top, left, h, w in boxes])
            conds = batched([self.condition.at(t, box) for box in boxes], n)
            reduction = TileReduction([self.cores[i] for i in indices], n, h, w) if self.image_statistics else None
            with reducing_over_tiles(reduction):
                out = self.net(crops, t.repeat(len(boxes)), conds)
            self.calls += 1
            if out_canvas is None:
                out_canvas = x_t.new_zeros(n, out.shape[1], *x_t.shape[-2:])
            weight = self.weights[(h, w)]
            for k, (top, left, _, _) in enumerate(boxes):
                region = (..., slice(top, top + h), slice(left, left + w))
                out_canvas[region] += out[k * n:(k + 1) * n] * weight
                total[region[1:]] += weight
        return out_canvas / total


def tile_options(tile, scale, divisor, where='val.tile', grid=1, unit=1):
    """``{size, overlap, batch, weights}`` (HR pixels; overlap 0, batch 1, Gaussian weights by default) checked
    against the model, or None for None (the whole image at once). ``unit``: HR pixels per canvas pixel (a latent
    space's factor; size and overlap must be multiples of it), ``scale``: the canvas grid tiles start on."""
    if tile is None:
        return None
    if not isinstance(tile, dict):
        raise TileError(f'{where}: expected {{size, overlap, batch, weights}}, got {tile!r}')
    if 'size' not in tile:
        raise TileError(f'{where}.size: missing (tile side in HR pixels)')
    tile = checked_options(TILE_OPTIONS, tile, where, 'a tile', error=TileError)
    for key in ('size', 'overlap'):
        if unit > 1 and (not isinstance(tile[key], int) or tile[key] % unit):
            raise TileError(f'{where}.{key}: must be a multiple of {unit} (output pixels per latent pixel), '
                            f'got {tile[key]!r}')
    check_tile_options(tile['size'] // unit, tile['overlap'] // unit, scale, divisor, tile['batch'],
                       where if unit == 1 else f'{where} (in latent pixels)', grid)
    return tile


def tile_multiple(scale, divisor, grid=1):
    """What a tile's side must be a multiple of: the U-Net's divisor, the scale and the window grid."""
    return math.lcm(divisor, scale, grid)


def check_tile_options(tile, overlap, scale, divisor, batch=1, where='tile', grid=1):
    multiple = tile_multiple(scale, divisor, grid)
    if not isinstance(tile, int) or tile <= 0 or tile % multiple:
        why = f' and of the window grid {grid}' if grid > 1 else ''
        raise TileError(f'{where}.size: must be a positive multiple of {multiple} (of {divisor}, as the U-Net halves '
                        f'it, of the scale {scale}{why}), got {tile!r}')
    if not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise TileError(f'{where}.overlap: must be an integer from 0 to size - 1 ({tile - 1}), got {overlap!r}')
    if not isinstance(batch, int) or batch < 1:
        raise TileError(f'{where}.batch: must be a positive integer, got {batch!r}')


def tiled_map(fn, height, width, tile, overlap, align=1):
    """``fn(top, left, h, w)`` -> a list of (N, C_i, h * f_i, w * f_i) tensors (each output at its own scale f_i of
    the input canvas, e.g. a VAE's latent at 1/8 and its features at 1/2 and 1/4), run on overlapping tiles of a
    ``height`` x ``width`` canvas and blended with Gaussian weights into whole-canvas outputs. Memory is that of one
    tile's run plus the outputs. Tiles start on multiples of ``align`` (so every scaled box is whole)."""
    rows, cols = tile_spans(height, tile, tile - overlap, align), tile_spans(width, tile, tile - overlap, align)
    outputs = totals = None
    weights = {}  # per output shape
    for top, h in rows:
        for left, w in cols:
            parts = fn(top, left, h, w)
            if outputs is None:
                outputs = [p.new_zeros(*p.shape[:2], round(height * p.shape[-2] / h), round(width * p.shape[-1] / w))
                           for p in parts]
                totals = [p.new_zeros(o.shape[-2:]) for p, o in zip(parts, outputs)]
            for part, out, total in zip(parts, outputs, totals):
                region = scaled_box(top, left, h, w, part.shape[-2] / h)
                shape = tuple(part.shape[-2:])
                if shape not in weights:
                    weights[shape] = gaussian_weight(*shape, part.device, part.dtype)
                out[(..., *region)] += part * weights[shape]
                total[region] += weights[shape]
    return [out / total for out, total in zip(outputs, totals)]


def scaled_box(top, left, h, w, f):
    """(rows, cols) slices of the box (top, left, h, w) on a map at scale ``f`` of its canvas."""
    t, l = round(top * f), round(left * f)
    return slice(t, t + round(h * f)), slice(l, l + round(w * f))
