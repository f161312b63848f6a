"""What bf16 costs in quality on the demo's models: fp32 against bf16 + channels_last sampling of the same noise
on the held-out photographs, and (with --train) a demo-length bf16 training beside the fp32 one.

    python scripts/benchmark_precision.py [--num-samples 2] [--models demo_srdiff_x4 ...] [--train [--train-iters N]]

Each trained demo experiment found (demo.sh, benchmark_unets.py, benchmark_ecdp.py, distill.py make them) samples
the held-out images with its own default sampler, the same seeds, in fp32 and in bf16; the report gives the
benchmark metrics (benchmarking/scoring.py: PSNR and SSIM on RGB and on Y, ...) of both, their PSNR and LR-PSNR
differences against the 0.05 dB that ``precision: auto`` allows, and the largest and mean pixel difference of the
first samples.
--train trains options/demo_srdiff_x4.yml again for --train-iters iterations (default 1,000, a checkpoint of the
demo's run) with train.precision bf16 (experiment demo_srdiff_bf16_x4, the same seed and batches) and compares
its logged loss curve, and the samples of its final weights, with the fp32 run's at the same iteration.
Writes --out/report.md (an earlier report is archived).
"""
import argparse
import glob
import re
import subprocess
import sys
from os import path as osp

import numpy as np
import torch

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.report import write_report
from benchmarking.sampling import load_pairs, run_config, smallest_image
from benchmarking.scoring import METRIC_COLUMNS, benchmark_metrics, protocol_line
from benchmarking.speed import machine
from srdiff_basicsr.pipeline import SRDiffPipeline

EXPERIMENTS = ['demo_srdiff_x4', 'demo_srdiff_attn_x4', 'demo_sradm_x4', 'demo_ecdp_x4', 'demo_distill_x4']
BF16_RUN = 'demo_srdiff_bf16_x4'
ALLOWED_DB = 0.05  # what precision: auto may lose (execution.py)


def logged_losses(name):
    """{iteration: l_noise} from the newest training log of experiments/<name>."""
    logs = sorted(glob.glob(f'experiments/{name}/train_{name}_*.log'), key=osp.getmtime)
    if not logs:
        return {}
    with open(logs[-1]) as f:
        return {int(it): float(loss) for it, loss in re.findall(r'iter:\s*([\d,]+).*?l_noise: ([\d.e+-]+)',
                                                                 f.read().replace(',', ''))}


def train_bf16(iterations):
    if osp.isfile(f'experiments/{BF16_RUN}/models/net_g_{iterations}.pth'):
        print(f'=== reusing experiments/{BF16_RUN}', flush=True)
        return
    command = [sys.executable, '-m', 'srdiff_basicsr.train', '-opt', 'options/demo_srdiff_x4.yml', '--force_yml',
               f'name={BF16_RUN}', 'train:precision=bf16', f'train:total_iter={iterations}']
    if subprocess.run(command).returncode:
        sys.exit(f'training {BF16_RUN} failed; see the messages above')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lr-dir', default='datasets/demo/val/LR_bicubic/X4')
    parser.add_argument('--hr-dir', default='datasets/demo/val/HR')
    parser.add_argument('--num-samples', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--models', nargs='+', default=EXPERIMENTS, metavar='EXPERIMENT')
    parser.add_argument('--train', action='store_true', help=f'also train {BF16_RUN} and compare it')
    parser.add_argument('--train-iters', type=int, default=1000, help='its iterations: a checkpoint of the demo run')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='results/benchmark_precision')
    args = parser.parse_args()
    pairs = load_pairs(args.lr_dir, args.hr_dir)
    found = [f'experiments/{name}' for name in args.models if osp.isdir(f'experiments/{name}/models')]
    if not found:
        sys.exit(f'none of {", ".join(args.models)} in experiments/: run bash scripts/demo.sh (and the benchmarks) '
                 'first')
    if args.train:
        train_bf16(args.train_iters)
        found += [f'experiments/demo_srdiff_x4/models/net_g_{args.train_iters}.pth',
                  f'experiments/{BF16_RUN}/models/net_g_{args.train_iters}.pth']

    columns, rows, checks = None, [], []
    for model in found:
        name = model[len('experiments/'):]
        pipe = SRDiffPipeline.from_pretrained(model, device=args.device, precision='fp32')
        metrics, notes = benchmark_metrics(pipe.scale, device=args.device, shape=smallest_image(pairs))
        results = {}
        for label, precision, channels_last in (('fp32', 'fp32', False), ('bf16 + channels_last', 'bf16', True)):
            if name.startswith(BF16_RUN) and precision == 'fp32':
                continue  # the bf16-trained model samples as it trained
            pipe.set_execution(precision=precision, channels_last=channels_last)
            results[label] = run_config(pipe, pairs, args.num_samples, args.seed, metrics)
            rows.append((name, pipe.describe(), label, results[label][0]))
            print(f"{name}, {label}: PSNR {results[label][0]['psnr']:.3f}", flush=True)
        columns = columns or [(key, title, fmt) for key, title, fmt in METRIC_COLUMNS if key in rows[0][3]]
        if len(results) == 2:
            (exact, exact_images), (fast, fast_images) = results['fp32'], results['bf16 + channels_last']
            differences = [(a - b).abs() * 255 for a, b in zip(exact_images, fast_images)]
            d_psnr, d_lr = fast['psnr'] - exact['psnr'], fast['lr_psnr'] - exact['lr_psnr']
            checks.append(f"| {name} | {exact['psnr']:.3f} / {fast['psnr']:.3f} ({d_psnr:+.3f}) | "
                          f"{exact['lr_psnr']:.3f} / {fast['lr_psnr']:.3f} ({d_lr:+.3f}) | "
                          f'{"yes" if max(abs(d_psnr), abs(d_lr)) <= ALLOWED_DB else "**no**"} | '
                          f'{max(d.max().item() for d in differences):.2f} | '
                          f'{np.mean([d.mean().item() for d in differences]):.3f} |')

    report = ['# fp32 against bf16 sampling on the demo models', '',
              f'- images: {", ".join(name for name, _, _ in pairs)} ({args.hr_dir}); {args.num_samples} samples per '
              f'image, seed {args.seed} + image index, the same noise in both precisions; device: {args.device}, '
              f'{machine(args.device)}; torch {torch.__version__}',
              f'- {protocol_line(metrics, pipe.scale)}',
              '- metrics: means over samples and images', *[f'- {n}' for n in notes],
              '', '| experiment | sampler | sampling | ' + ' | '.join(t for _, t, _ in columns) + ' | s / image |',
              '|---' * (len(columns) + 4) + '|']
    for name, sampler, label, r in rows:
        report.append(f'| {name} | {sampler} | {label} | ' + ' | '.join(format(r[k], f) for k, _, f in columns)
                      + f" | {r['seconds']:.2f} |")
    report += ['', f'## bf16 against fp32, same weights and noise (allowed: {ALLOWED_DB} dB)', '',
               '| experiment | PSNR fp32 / bf16 (difference, dB) | LR-PSNR fp32 / bf16 (difference, dB) | within | '
               'max pixel difference (0-255) '
               '| mean |', '|---|---|---|---|---|---|', *checks]
    if args.train:
        fp32, bf16 = logged_losses('demo_srdiff_x4'), logged_losses(BF16_RUN)
        shared = sorted(set(fp32) & set(bf16))
        report += ['', f'## Training in bf16 ({BF16_RUN}) beside fp32 (demo_srdiff_x4), {args.train_iters:,} '
                   'iterations from the same seed: logged l_noise (their samples: the rows of net_g_'
                   f'{args.train_iters}.pth above)', '',
                   '| iteration | fp32 | bf16 |', '|---|---|---|',
                   *[f'| {it:,} | {fp32[it]:.4f} | {bf16[it]:.4f} |' for it in shared[::max(1, len(shared) // 10)]]]
        if shared:
            gap = np.abs(np.array([bf16[i] for i in shared]) - np.array([fp32[i] for i in shared]))
            report.append(f'\nover the {len(shared)} logged iterations: mean |difference| {gap.mean():.4f}, '
                          f'fp32 mean {np.mean([fp32[i] for i in shared]):.4f}')
    write_report(args.out, report)


if __name__ == '__main__':
    main()
