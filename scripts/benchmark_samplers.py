"""Sampler benchmark: network evaluations, time, memory and quality of each sampler and step count.

    python scripts/benchmark_samplers.py [--model experiments/demo_srdiff_x4] [--num-samples 3] [--large]

On the held-out images (default: the demo's), every configuration draws --num-samples samples per image
(image i seeded with seed + i) and reports: network evaluations (NFE) per sample, seconds per image,
peak memory above the loaded model (RSS polled on CPU, max allocated on CUDA), PSNR, SSIM (on RGB,
whole image, and on Y, border crop = scale), NIQE, LR-PSNR, sigma, and LPIPS where its weights exist. It also compares
tiled with untiled sampling on the same images, and with --large times a 2040x1356 output (x4 from
510x339) untiled and tiled. --students adds the rows of distilled students (experiment folders of
scripts/distill.py), each sampled by DDIM with the step count it was distilled for, in the same run as the
teacher's rows. Writes results/benchmark_samplers/report.md (an earlier one is archived).
"""
import argparse
import time
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.utils import mkdir_and_rename, tensor2img

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.grid import comparison_grid
from benchmarking.sampling import PeakMemory, load_pairs, run_config, smallest_image
from benchmarking.scoring import METRIC_COLUMNS, benchmark_metrics, protocol_line
from srdiff_basicsr.diffusion.samplers import describe_sampler, sampler_options
from srdiff_basicsr.loading.model_files import model_manifest
from srdiff_basicsr.ops.resize import imresize_uint8
from srdiff_basicsr.pipeline import SRDiffPipeline

CONFIGS = [{'type': 'ddpm'},
           {'type': 'ddim', 'steps': 20, 'eta': 1.0}, {'type': 'ddim', 'steps': 10, 'eta': 1.0},
           {'type': 'ddim', 'steps': 20, 'eta': 0.5},
           {'type': 'ddim', 'steps': 50}, {'type': 'ddim', 'steps': 20}, {'type': 'ddim', 'steps': 10},
           {'type': 'dpmpp_2m', 'steps': 20}, {'type': 'dpmpp_2m', 'steps': 10}, {'type': 'dpmpp_2m', 'steps': 5},
           {'type': 'ode', 'rtol': 1e-3, 'atol': 1e-3}, {'type': 'ode', 'rtol': 1e-2, 'atol': 1e-2}]


def table(results):
    """Rows (name, result) under the metric columns that the results have (LPIPS only with its weights)."""
    columns = [(key, title, fmt) for key, title, fmt in METRIC_COLUMNS if key in results[0][1]]
    lines = ['| sampler | NFE | s / image | peak MiB | ' + ' | '.join(title for _, title, _ in columns) + ' |',
             '|---' * (4 + len(columns)) + '|']
    for name, r in results:
        lines.append(f"| {name} | {r['nfe']} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | "
                     + ' | '.join(format(r[key], fmt) for key, _, fmt in columns) + ' |')
    return lines


def student_runs(folders, pairs, args, metrics):
    """(name, result, first samples) of each distilled student, sampled by DDIM with the steps it was distilled for
    (``model_sampler``)."""
    results = []
    for folder in folders:
        manifest = model_manifest(folder)
        sampler = manifest.sampler
        if (sampler or {}).get('type') != 'ddim':
            raise SystemExit(f'--students {folder}: {manifest.source} names no DDIM sampler of its own (not a '
                             'distilled student)')
        pipe = SRDiffPipeline.from_pretrained(folder, device=args.device, sampler=sampler)
        result, firsts = run_config(pipe, pairs, args.num_samples, args.seed, metrics)
        results.append((f'student {osp.basename(osp.normpath(folder))}: {pipe.describe()}', result, firsts))
        print(f"{results[-1][0]}: {result['seconds']:.2f} s/image, PSNR {result['psnr']:.2f}", flush=True)
    return results


def students_grid(pairs, teacher_name, teacher_firsts, students, path):
    """One row per image: the HR, the teacher's first sample and each student's, the same crop."""
    rows = [comparison_grid(hr, [('HR', hr), (teacher_name, tensor2img(teacher_firsts[index]))]
                            + [(name.split(': ')[0].removeprefix('student '), tensor2img(firsts[index]))
                               for name, _, firsts in students])  # the folder's name, which ends in _s<steps>
            for index, (_, _, hr) in enumerate(pairs)]
    width = max(row.shape[1] for row in rows)
    cv2.imwrite(path, np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255)
                                      for row in rows]))


def large_image_runs(pipe, sampler, tile, out):
    """A 2040x1356 output from a 510x339 LR (a scikit-image photograph), whole and tiled."""
    from skimage import data
    hr = cv2.resize(data.coffee(), (2040, 1356), interpolation=cv2.INTER_CUBIC)
    lq = torch.from_numpy(imresize_uint8(hr, 1 / 4)).permute(2, 0, 1)[None].float().div(255).to(pipe.device)
    steps = pipe.schedule.num_timesteps
    lines = ['', f'## Large image: 2040x1356 output (x4 from 510x339), '
             f'{describe_sampler(sampler_options(sampler, steps), steps)}', '',
             '| mode | s | peak MiB above the model |', '|---|---|---|']
    outputs = {}
    for mode, tile_opt in (('whole image', None), (f"tiles {tile['size']}, overlap {tile['overlap']}", tile)):
        pipe.set_sampling(sampler, tile_opt)
        with PeakMemory(pipe.device) as memory:
            start = time.perf_counter()
            outputs[mode] = pipe(lq, seed=0).cpu()
            seconds = time.perf_counter() - start
        lines.append(f'| {mode} | {seconds:.1f} | {memory.mib:.0f} |')
        print(lines[-1], flush=True)
        cv2.imwrite(osp.join(out, f"large_{'tiled' if tile_opt else 'whole'}.png"), tensor2img(outputs[mode]))
    whole, tiled = outputs.values()
    lines.append(f'\nwhole vs tiled: max |difference| {(whole - tiled).abs().max().item() * 255:.1f} / 255, '
                 f'mean {(whole - tiled).abs().mean().item() * 255:.2f} / 255; images in `{out}/large_*.png`')
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='experiments/demo_srdiff_x4', help='as srdiff-infer --model')
    parser.add_argument('--lr-dir', default='datasets/demo/val/LR_bicubic/X4')
    parser.add_argument('--hr-dir', default='datasets/demo/val/HR')
    parser.add_argument('--num-samples', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tile', type=int, default=64, help='tile side (HR pixels) of the tiled-vs-whole check')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--large', action='store_true', help='also time a 2040x1356 output, whole and tiled')
    parser.add_argument('--large-tile', type=int, default=256)
    parser.add_argument('--students', nargs='*', default=[], help='experiment folders of distilled students')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='results/benchmark_samplers')
    args = parser.parse_args()

    pipe = SRDiffPipeline.from_pretrained(args.model, device=args.device)
    pairs = load_pairs(args.lr_dir, args.hr_dir)
    metrics, notes = benchmark_metrics(pipe.scale, device=args.device, shape=smallest_image(pairs))
    mkdir_and_rename(args.out)
    results, firsts = [], {}
    for config in CONFIGS:
        pipe.set_sampling(config)
        name = pipe.describe()
        result, firsts[name] = run_config(pipe, pairs, args.num_samples, args.seed, metrics)
        results.append((name, result))
        print(f"{name}: NFE {result['nfe']}, {result['seconds']:.2f} s/image, PSNR {result['psnr']:.2f}, "
              f"LR-PSNR {result['lr_psnr']:.2f}", flush=True)
    students = student_runs(args.students, pairs, args, metrics)
    reference = results[0][1]
    met = [name for name, r in results if r['nfe'] * 5 <= reference['nfe']
           and abs(r['psnr'] - reference['psnr']) <= 0.3 and abs(r['lr_psnr'] - reference['lr_psnr']) <= 1]
    device = (torch.cuda.get_device_name() if args.device.startswith('cuda')
              else f'CPU ({torch.get_num_threads()} threads)')
    report = ['# Sampler benchmark', '',
              f'- model: {args.model}; images: {", ".join(name for name, _, _ in pairs)} ({args.hr_dir}); '
              f'{args.num_samples} samples per image, seed {args.seed} + image index; device: {device}',
              f'- {protocol_line(metrics, pipe.scale)}',
              '- metrics: each the mean over samples and images; NFE per sample '
              '(the samples of an image share each network call); s / image for all its samples',
              f'- target (<= 1/5 of the DDPM NFE, PSNR within 0.3 dB, LR-PSNR within 1 dB of it): '
              f'{"met by " + ", ".join(met) if met else "not met"}']
    report += [f'- {note}' for note in notes]
    report += ['', *table(results)]
    if students:
        report += ['', f'## Distilled students (DDIM with the steps each was distilled for), beside the teacher\'s '
                   f'{results[0][0]}', '', *table([results[0], *[(name, r) for name, r, _ in students]]), '',
                   *[f"- {name}: time per image / the teacher's {results[0][0]}: "
                     f"{r['seconds'] / reference['seconds']:.3f}; PSNR {r['psnr'] - reference['psnr']:+.2f} dB, "
                     f"LR-PSNR {r['lr_psnr'] - reference['lr_psnr']:+.2f} dB" for name, r, _ in students],
                   '- grid of the first samples (teacher, then each student): students_grid.png']
        students_grid(pairs, results[0][0], firsts[results[0][0]], students, osp.join(args.out, 'students_grid.png'))

    # tiled vs whole, same sampler and noise: how close the fused tiles are on images small enough for both
    check = {'type': 'ddim', 'steps': 20}
    tile = {'size': args.tile, 'overlap': args.tile_overlap, 'batch': 4}
    pipe.set_sampling(check, tile)
    tiled, tiled_firsts = run_config(pipe, pairs, args.num_samples, args.seed, metrics)
    check_name = pipe.describe()
    whole = firsts[check_name]
    diff = max((a - b).abs().max().item() for a, b in zip(whole, tiled_firsts)) * 255
    mean_diff = np.mean([(a - b).abs().mean().item() for a, b in zip(whole, tiled_firsts)]) * 255
    report += ['', f"## Tiled ({args.tile}x{args.tile} tiles, overlap {args.tile_overlap}) vs whole image, "
               f"{check_name}", '',
               *table([('whole image', dict(results)[check_name]), ('tiled', tiled)]), '',
               f'first samples, tiled vs whole: max |difference| {diff:.1f} / 255, mean {mean_diff:.2f} / 255']
    if args.large:
        report += large_image_runs(pipe, {'type': 'dpmpp_2m', 'steps': 10},
                                   {'size': args.large_tile, 'overlap': 64, 'batch': 1}, args.out)
    text = '\n'.join(report) + '\n'
    with open(osp.join(args.out, 'report.md'), 'w') as f:
        f.write(text)
    print('\n' + text)


if __name__ == '__main__':
    main()
