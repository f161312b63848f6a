"""StableSR at the released sizes (random weights): peak memory and seconds per step, whole vs tiled, fp32 vs bf16.

    python scripts/benchmark_stablesr.py [--size 2048] [--tile 512] [--vae-tile 1152 --vae-overlap 128] [--steps 2]
        [--precisions fp32 bf16]

Each configuration runs in its own process (its peak resident memory is the process's): the LR image (--size / 4)
is upsampled, VAE-encoded, sampled with DDIM for --steps steps and decoded; "tiled" runs the U-Net on StableSR's
latent canvas tiles of --tile output pixels (overlap half) and the VAE on tiles of --vae-tile (default --tile;
overlap --vae-overlap, default half), "whole" the whole image at once.
Seconds per step are between the network evaluations (the time-aware encoder and the U-Net on every tile); the VAE's
encode and decode are timed apart. The weights alone take ~4.4 GB in fp32. Writes --out/report.md.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from benchmarking.report import write_report
from benchmarking.speed import machine


def run_one(size, tiled, tile, precision, steps, vae_tile):
    """One configuration, in this process: a JSON line of its numbers."""
    from srdiff_basicsr.diffusion.condition import TimeAwareCondition
    from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
    from srdiff_basicsr.diffusion.space import VAELatentSpace
    from srdiff_basicsr.archs.arch_options import build_arch
    from srdiff_basicsr.conversion.stablesr import stablesr_options
    from srdiff_basicsr.pipeline import SRDiffPipeline

    options = stablesr_options()
    torch.manual_seed(0)
    unet, encoder, vae = (build_arch(dict(options[s])).eval() for s in ('network_g', 'network_encoder', 'network_vae'))
    space = VAELatentSpace(vae, 4, vae_tile=vae_tile if tiled else None)
    pipe = SRDiffPipeline(encoder, unet, DiscreteSchedule.from_options('scaled_linear'), 4, space=space,
                          condition=TimeAwareCondition, sampler={'type': 'ddim', 'steps': steps},
                          tile={'size': tile, 'overlap': tile // 2} if tiled else None, precision=precision)
    lr = torch.rand(1, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(0))
    stamps = []
    start = time.perf_counter()
    with torch.no_grad():
        pipe(lr, seed=0, on_step=lambda n: stamps.append(time.perf_counter()))
    end = time.perf_counter()
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float('nan')
    vae_seconds = (end - start) - (stamps[-1] - stamps[0]) - per_step  # encode + decode (+ the pipeline's rest)
    print(json.dumps({'per_step': per_step, 'vae': vae_seconds, 'total': end - start,
                      'peak_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=2048, help='output side in pixels (a multiple of 64)')
    parser.add_argument('--tile', type=int, default=512, help='tile side in output pixels (StableSR: 512)')
    parser.add_argument('--vae-tile', type=int, help="the VAE's tile side in output pixels (default: --tile)")
    parser.add_argument('--vae-overlap', type=int, help="the VAE tiles' overlap (default: half the VAE tile)")
    parser.add_argument('--steps', type=int, default=2, help='DDIM steps timed (at least 2)')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--modes', nargs='+', default=['whole', 'tiled'], choices=['whole', 'tiled'])
    parser.add_argument('--out', default='results/benchmark_stablesr')
    parser.add_argument('--one', nargs=4, metavar=('SIZE', 'TILED', 'TILE', 'PRECISION'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    vae_tile = args.vae_tile or args.tile
    vae_tile = {'size': vae_tile, 'overlap': vae_tile // 2 if args.vae_overlap is None else args.vae_overlap}
    if args.one:
        size, tiled, tile, precision = args.one
        return run_one(int(size), tiled == 'tiled', int(tile), precision, args.steps, vae_tile)
    if args.size % 64 or args.tile % 16 or vae_tile['size'] % 16 or vae_tile['overlap'] % 8 or args.steps < 2:
        parser.error('--size: a multiple of 64; --tile, --vae-tile: multiples of 16; --vae-overlap: of 8; '
                     '--steps: 2 or more')
    rows = []
    for mode in args.modes:
        for precision in args.precisions:
            done = subprocess.run([sys.executable, __file__, '--one', str(args.size), mode, str(args.tile), precision,
                                   '--steps', str(args.steps), '--vae-tile', str(vae_tile['size']), '--vae-overlap',
                                   str(vae_tile['overlap'])], capture_output=True, text=True,
                                  env={**os.environ, 'PYTHONPATH': os.path.dirname(os.path.dirname(__file__))})
            if done.returncode:
                tail = (done.stderr.strip().splitlines() or ['killed'])[-1]
                rows.append(f'| {mode} | {precision} | failed: {tail[:80]} | | | |')
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(f"| {mode} | {precision} | {r['peak_gb']:.1f} | {r['per_step']:.1f} | {r['vae']:.1f} | "
                        f"{r['total']:.1f} |")
            print(rows[-1], flush=True)
    write_report(args.out, [
        f'# StableSR, released sizes, random weights: {args.size}x{args.size} output (x4), {machine("cpu")}', '',
        f'tiled: U-Net canvas tiles of {args.tile} output pixels, overlap {args.tile // 2}; VAE tiles of '
        f"{vae_tile['size']}, overlap {vae_tile['overlap']}; DDIM {args.steps} steps", '',
        '| mode | precision | peak memory GB | s / step | VAE encode + decode s | total s |',
        '|---|---|---|---|---|---|', *rows])


if __name__ == '__main__':
    main()
