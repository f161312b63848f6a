"""Benchmark SR methods side by side on the test sets of an SRDiff test options file, in one run.

    python scripts/benchmark.py -opt options/demo_test_srdiff_x4.yml --num-samples 3 \
        [--model ESRGAN=options/test_esrgan.yml ...] [--crop-border N] [--out DIR]

Methods: bicubic (MATLAB), the L1-pretrained RRDB encoder of the SRDiff model, SRDiff (N samples per
image, seeded as its test pipeline: the same samples as ``srdiff-test``), and any BasicSR model given by
a test options file. Metrics: PSNR and SSIM on RGB at full size (the SRDiff paper's tables) and on the Y channel
with a border crop (BasicSR's, the real-world SR papers'), LPIPS (AlexNet; needs torchvision's ImageNet weights on
disk), ST-LPIPS (works offline: its weights ship with the wheel), NIQE, MUSIQ and CLIPIQA (no reference; the last
two where pyiqa and its weights are on disk), LR-PSNR, sigma (diversity across samples, 0-255 scale) and seconds
per image. A test set without HR images (BasicSR's SingleImageDataset: real-world inputs) is scored by what needs
no HR: the no-reference metrics, LR-PSNR (the SR downscaled against the input: LR consistency) and sigma.
Writes to DIR (default results/benchmark_<name>; an existing one is archived):
report.md, metrics_<dataset>.csv (per image and method), grids/<dataset>/<image>.png
(LR | bicubic | RRDB | SRDiff samples | other models | HR, cropped to the most detailed region of the HR, or of the
bicubic upscale without one).
"""
import argparse
import csv
import sys
from os import path as osp

import cv2
import numpy as np
import torch
from tqdm import tqdm

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from basicsr.data import build_dataset
from basicsr.metrics import calculate_metric
from basicsr.utils import imwrite, mkdir_and_rename, tensor2img
from benchmarking.grid import comparison_grid
from benchmarking.methods import Bicubic, BasicSRModel, Encoder, SRDiff, build_basicsr_model
from benchmarking.scoring import METRIC_COLUMNS, NO_REFERENCE, benchmark_metrics, protocol_line, scorable
from srdiff_basicsr.errors import USER_ERRORS, DatasetError, OptionsError
from srdiff_basicsr.models.evaluation import check_scorable, score_samples

COLUMNS = [*METRIC_COLUMNS, ('seconds', 's / image', '.2f')]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='SRDiff test options file (model, encoder, datasets, seed)')
    parser.add_argument('--model', action='append', default=[], metavar='NAME=OPTIONS',
                        help='another BasicSR model to compare, by its test options file (repeatable)')
    parser.add_argument('--num-samples', type=int, help='SRDiff samples per image (default: val.num_samples or 1)')
    parser.add_argument('--seed', type=int, help='sampling seed (default: val.seed or manual_seed of -opt)')
    parser.add_argument('--crop-border', type=int,
                        help="border pixels left out of PSNR-Y, SSIM-Y and NIQE (default: -opt's val.metrics "
                             'psnr_y crop_border, else the scale)')
    parser.add_argument('--lpips', choices=['alex', 'vgg', 'off'], default='alex',
                        help='LPIPS trunk; without its ImageNet weights on disk LPIPS is left out, with a note')
    parser.add_argument('--lpips-random-trunk', action='store_true', help=argparse.SUPPRESS)  # plumbing tests
    parser.add_argument('--srdiff-name', help="the -opt model's name in the tables (default: SRDiff and its sampler)")
    parser.add_argument('--lr-psnr-from-hr', action='store_true',
                        help="LR-PSNR against the HR's bicubic LR, not the input (for degraded inputs: their clean LR)")
    parser.add_argument('--max-images', type=int, help='only the first N images of each dataset')
    parser.add_argument('--grid-samples', type=int, default=3, help='SRDiff samples shown in the grids')
    parser.add_argument('--crop-size', type=int, default=192, help='grids show at most this many pixels a side')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', help='output folder (default: results/benchmark_<name of -opt>)')
    args = parser.parse_args(argv)
    if args.crop_border is not None and args.crop_border < 0:
        parser.error('--crop-border must be at least 0')
    if args.num_samples is not None and args.num_samples < 1:
        parser.error('--num-samples must be at least 1')
    for entry in args.model:
        if '=' not in entry:
            parser.error(f'--model {entry}: expected NAME=OPTIONS_FILE')
    return args


def build_methods(args):
    srdiff_model, opt = build_basicsr_model(args.opt, args.device)
    if opt['model_type'] != 'SRDiffModel':
        raise OptionsError(f'-opt {args.opt}: model_type is {opt["model_type"]}, expected SRDiffModel')
    val_opt = opt.get('val') or {}
    num_samples = args.num_samples or val_opt.get('num_samples', 1)
    seed = args.seed if args.seed is not None else val_opt.get('seed', opt.get('manual_seed', 0))
    pipe = srdiff_model.pipeline
    methods = [Bicubic(opt['scale']), Encoder(pipe), SRDiff(pipe, num_samples, seed, args.srdiff_name)]
    for entry in args.model:
        name, options_path = entry.split('=', 1)
        model, model_opt = build_basicsr_model(options_path, args.device)
        if model_opt['scale'] != opt['scale']:
            raise OptionsError(f'--model {name}: scale {model_opt["scale"]} differs from -opt\'s {opt["scale"]}')
        methods.append(BasicSRModel(name, model))
    return methods, opt, num_samples, seed


def metric_options(args, opt):
    crop_border = args.crop_border
    if crop_border is None:
        crop_border = ((opt.get('val') or {}).get('metrics') or {}).get('psnr_y', {}).get('crop_border')
    metrics, notes = benchmark_metrics(opt['scale'], crop_border, args.lpips, args.device, args.lpips_random_trunk)
    for note in notes:
        print(f'warning: {note}', file=sys.stderr)
    if args.lr_psnr_from_hr:
        metrics['lr_psnr']['lr_from_hr'] = True
        notes.append("LR-PSNR against the HR's bicubic LR (the clean version of the degraded input), not the input")
    return metrics, notes


def dataset_metrics(dataset, metrics, scale, args):
    """(metrics, notes) of a test set: all with HR images, without them those that need none; NIQE left out where
    its first image is too small for it."""
    name, first, notes = dataset.opt['name'], dataset[0], []
    if 'gt' not in first:
        if args.lr_psnr_from_hr:
            raise DatasetError(f'--lr-psnr-from-hr: dataset {name!r} has no HR images (dataroot_gt) to make a clean '
                               'LR of')
        metrics = {key: opt for key, opt in metrics.items() if key in NO_REFERENCE}
        notes.append(f'no HR images: scored by {", ".join(metrics)} and sigma only')
    metrics, too_small = scorable(metrics, (first['lq'].shape[1] * scale, first['lq'].shape[2] * scale))
    notes += too_small
    for note in notes:
        print(f'{name}: {note}', file=sys.stderr)
    return metrics, notes


def evaluate_dataset(dataset, methods, metrics, scale, args, grids_dir):
    """Per image and method: metrics averaged over samples, sigma; a comparison grid per image."""
    rows = []
    count = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
    for index in tqdm(range(count), unit='image', desc=dataset.opt['name']):
        data = dataset[index]
        name = osp.splitext(osp.basename(data['lq_path']))[0]
        lq = data['lq'][None].to(args.device)
        check_scorable(metrics, (lq.shape[2] * scale, lq.shape[3] * scale), f"{dataset.opt['name']}/{name}")
        hr_img = tensor2img(data['gt']) if 'gt' in data else None
        lr_img = tensor2img(data['lq'])
        tiles = []
        for method in methods:
            samples = [tensor2img(sample) for sample in method(lq, index)]
            rows.append({'image': name, 'method': method.name, **score_samples(samples, metrics, hr_img, lr_img)})
            shown = samples[:args.grid_samples] if method.stochastic else samples
            for k, sr in enumerate(shown):
                label = f'{method.name} #{k + 1}' if method.stochastic else method.name
                if hr_img is not None:
                    label += f' {calculate_metric({"img": sr, "img2": hr_img}, metrics["psnr"]):.2f}dB'
                tiles.append((label, sr))
        # without an HR, the crop is chosen on the first method's upscale (bicubic)
        reference = tiles[0][1] if hr_img is None else hr_img
        lr_nearest = cv2.resize(lr_img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        lr_tile = np.zeros_like(reference)
        lr_tile[:lr_nearest.shape[0], :lr_nearest.shape[1]] = lr_nearest
        shown = [('LR (nearest)', lr_tile), *tiles] + ([] if hr_img is None else [('HR', hr_img)])
        grid = comparison_grid(reference, shown, args.crop_size, 'HR' if hr_img is not None else tiles[0][0])
        imwrite(grid, osp.join(grids_dir, f'{name}.png'))
    return rows


def write_csv(path, rows, keys):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'method', *keys])
        for row in rows:
            writer.writerow([row['image'], row['method'], *(f'{row[key]:.6f}' for key in keys)])


def table(rows, methods, metrics):
    keys = [key for key, _, _ in COLUMNS if key in metrics or key in ('sigma', 'seconds')]
    header = '| Method | ' + ' | '.join(title for key, title, _ in COLUMNS if key in keys) + ' |'
    lines = [header, '|---' * (len(keys) + 1) + '|']
    for method in methods:
        mine = [row for row in rows if row['method'] == method.name]
        means = {key: np.mean([row[key] for row in mine]) for key in keys if key != 'seconds'}
        means['seconds'] = method.seconds / max(method.images, 1)
        lines.append(f'| {method.name} | ' + ' | '.join(format(means[key], fmt) for key, _, fmt in COLUMNS
                                                          if key in keys) + ' |')
    return lines


def main(argv=None):
    args = parse_args(argv)
    methods, opt, num_samples, seed = build_methods(args)
    metrics, notes = metric_options(args, opt)
    out = args.out or osp.join('results', f'benchmark_{opt["name"]}')
    mkdir_and_rename(out)  # an earlier report is archived, not overwritten
    report = [f'# Benchmark: {opt["name"]} (x{opt["scale"]})', '',
              f'- {protocol_line(metrics, opt["scale"])}',
              f'- SRDiff: {num_samples} sample(s) per image, seed {seed} + image index; each metric is the mean '
              'over samples; sigma = per-pixel standard deviation across samples (0-255), averaged over pixels '
              'and images (0 for deterministic methods)',
              f'- device: {args.device}; s / image = wall time of the method for all its samples of one image']
    report += [f'- {note}' for note in notes]
    for phase, dataset_opt in opt['datasets'].items():
        dataset = build_dataset(dataset_opt)
        for method in methods:
            method.seconds, method.images = 0.0, 0
        grids_dir = osp.join(out, 'grids', dataset_opt['name'])
        scored, set_notes = dataset_metrics(dataset, metrics, opt['scale'], args)
        rows = evaluate_dataset(dataset, methods, scored, opt['scale'], args, grids_dir)
        write_csv(osp.join(out, f'metrics_{dataset_opt["name"]}.csv'), rows, [*scored, 'sigma'])
        images = len({row['image'] for row in rows})
        report += ['', f'## {dataset_opt["name"]} ({images} images)', '', *[f'- {note}' for note in set_notes],
                   *([''] if set_notes else []), *table(rows, methods, scored), '',
                   f'Per image: `metrics_{dataset_opt["name"]}.csv`; grids: `grids/{dataset_opt["name"]}/`.']
    text = '\n'.join(report) + '\n'
    with open(osp.join(out, 'report.md'), 'w') as f:
        f.write(text)
    print('\n' + text + f'\nwritten to {out}/')
    return out


if __name__ == '__main__':
    try:
        main()
    except USER_ERRORS as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
