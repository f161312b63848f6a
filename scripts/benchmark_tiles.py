"""Tiled against whole-image sampling of the same noise, for each demo model found, on canvases of several tiles.

    python scripts/benchmark_tiles.py [--size 192] [--tile 64] [--overlap 32] [--models EXPERIMENT ...]

The demo's held-out photographs are 128x128: too small for SRADM's tiles, which start and end on its window
grid (48 HR pixels in the demo), so one 96-pixel tile already spans them. Here the HR images are centred
--size crops of scikit-image's photographs (astronaut, coffee, chelsea; LR: MATLAB bicubic x1/4). Each model
samples them whole and tiled (side: --tile rounded up to the model's tile multiple; --overlap HR pixels, the
tiles' starts then on its grid) with DDIM 20 (eta 0) from the same seed, and the report gives the tiles per
image, the largest and mean |difference| between the two images (0-255) and the seconds of each.
Needs the demo's models (bash scripts/demo.sh, benchmark_unets.py, benchmark_ecdp.py). Writes --out/report.md.
"""
import argparse
import sys
import time
from os import path as osp

import numpy as np
import torch

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.report import write_report
from benchmarking.speed import machine
from srdiff_basicsr.diffusion.tiling import tile_multiple, tile_spans
from srdiff_basicsr.ops.resize import imresize_uint8
from srdiff_basicsr.pipeline import SRDiffPipeline

EXPERIMENTS = ['demo_srdiff_x4', 'demo_srdiff_attn_x4', 'demo_sradm_x4', 'demo_ecdp_x4']
SAMPLER = {'type': 'ddim', 'steps': 20, 'eta': 0.0}


def photographs(size, scale):
    """(name, LR batch in [0, 1]) of centred size x size crops of scikit-image's photographs."""
    from skimage import data
    images = []
    for name in ('astronaut', 'coffee', 'chelsea'):
        photo = getattr(data, name)()
        top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
        hr = np.ascontiguousarray(photo[top:top + size, left:left + size])
        lr = imresize_uint8(hr, 1 / scale)
        images.append((name, torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255))
    return images


def timed_sample(pipe, lr, seed):
    start = time.perf_counter()
    sample = pipe(lr, seed=seed)
    return sample, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=192, help='HR side of the crops')
    parser.add_argument('--tile', type=int, default=64)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--models', nargs='+', default=EXPERIMENTS, metavar='EXPERIMENT')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='results/benchmark_tiles')
    args = parser.parse_args()
    found = [name for name in args.models if osp.isdir(f'experiments/{name}/models')]
    if not found:
        sys.exit(f'none of {", ".join(args.models)} in experiments/: run bash scripts/demo.sh and the benchmarks first')

    rows = []
    for name in found:
        pipe = SRDiffPipeline.from_pretrained(f'experiments/{name}', device=args.device, precision='fp32')
        grid = getattr(pipe.unet, 'window_grid', 1)
        multiple = tile_multiple(pipe.scale, pipe.unet.divisor, grid)
        tile = {'size': -(-args.tile // multiple) * multiple, 'overlap': args.overlap, 'batch': 4}
        for index, (image, lr) in enumerate(photographs(args.size, pipe.scale)):
            pipe.set_sampling(SAMPLER)
            whole, whole_s = timed_sample(pipe, lr, args.seed + index)
            pipe.set_sampling(SAMPLER, tile=tile)
            tiled, tiled_s = timed_sample(pipe, lr, args.seed + index)
            spans = tile_spans(args.size, tile['size'], tile['size'] - tile['overlap'], multiple)
            difference = (whole - tiled).abs() * 255
            rows.append(f"| {name} | {image} | {tile['size']} (grid {grid}) | {len(spans) ** 2} | "
                        f'{difference.max().item():.3g} | {difference.mean().item():.3g} | {whole_s:.1f} | '
                        f'{tiled_s:.1f} |')
            print(rows[-1], flush=True)
    report = [f'# Tiled vs whole-image sampling on {args.size}x{args.size} canvases', '',
              f'- DDIM 20 (eta 0), the same seed for both; tiles of the side shown with {args.overlap} HR pixels of '
              f'overlap (the starts on the model\'s grid), 4 per network call; device: {args.device}, '
              f'{machine(args.device)}; fp32',
              '- HR: centred crops of scikit-image\'s astronaut, coffee and chelsea; LR: MATLAB bicubic x1/4', '',
              '| model | image | tile side | tiles | max abs difference (0-255) | mean | whole s | tiled s |',
              '|---|---|---|---|---|---|---|---|', *rows]
    write_report(args.out, report)


if __name__ == '__main__':
    main()
