"""``srdiff-infer interpolate`` and ``srdiff-infer fuse``: the paper's manipulations from the command line."""
import argparse
import os
from os import path as osp

import torch

from srdiff_basicsr.inference.command_line import add_model_arguments, build_pipeline
from srdiff_basicsr.inference.images import read_image, to_array, write_image
from srdiff_basicsr.manipulation import content_fusion, latent_interpolation
from srdiff_basicsr.ops.resize import imresize


def _model_arguments(parser):
    add_model_arguments(parser)
    parser.add_argument('--t-bar', type=int, default=50, help='step the latent is diffused to (paper: 50)')
    parser.add_argument('--force', action='store_true', help='overwrite existing outputs')


def _rgb(path, device):
    return read_image(path).rgb.to(device)


def _check_output(path, force, inputs=()):
    """Before any work: an output never replaces an input, nor an existing file without --force."""
    if any(osp.exists(path) and osp.samefile(path, given) for given in inputs if given):
        raise ValueError(f'{path} is one of the input images; choose another output')
    if osp.exists(path) and not force:
        raise FileExistsError(f'{path} exists; --force to overwrite')


def _write(path, image):
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    write_image(path, to_array(image, None, False, 255))


def _lr_of(hr, scale):
    return imresize(hr, 1 / scale).clamp(0, 1)


def interpolate_parser():
    parser = argparse.ArgumentParser(
        prog='srdiff-infer interpolate',
        description='Latent interpolation (paper 5.4): two HR images of one LR image (given, or two SR samples '
                    'drawn with --seed-a/--seed-b), diffused to t_bar, mixed lam * A + (1 - lam) * B, denoised.')
    parser.add_argument('--lr', required=True, help='the LR image')
    parser.add_argument('--hr-a', help='first HR image (default: an SR sample with --seed-a)')
    parser.add_argument('--hr-b', help='second HR image (default: an SR sample with --seed-b)')
    parser.add_argument('--seed-a', type=int, default=1)
    parser.add_argument('--seed-b', type=int, default=2)
    parser.add_argument('--lam', type=float, nargs='+', default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument('-o', '--output', required=True, help='output folder: interp_<lam>.png (+ a.png, b.png)')
    _model_arguments(parser)
    return parser


def run_interpolate(args):
    names = ['a.png', 'b.png'] + [f'interp_{lam:g}.png' for lam in args.lam]
    for name in names:
        _check_output(osp.join(args.output, name), args.force, (args.lr, args.hr_a, args.hr_b))
    pipe = build_pipeline(args, sampling=False)  # the paper's DDPM from t_bar, whole images
    lq = _rgb(args.lr, pipe.device)
    ends = {}
    for name, given, seed in (('a', args.hr_a, args.seed_a), ('b', args.hr_b, args.seed_b)):
        ends[name] = _rgb(given, pipe.device) if given else pipe(lq, seed=seed)
        _write(osp.join(args.output, f'{name}.png'), ends[name])
    for lam in args.lam:
        generator = torch.Generator(pipe.device).manual_seed(args.seed)
        mixed = latent_interpolation(pipe, lq, ends['a'], ends['b'], lam, args.t_bar, generator)
        _write(osp.join(args.output, f'interp_{lam:g}.png'), mixed)
    print(f'wrote a.png, b.png and {len(args.lam)} interpolation(s) to {args.output}')
    return 0


def fuse_parser():
    parser = argparse.ArgumentParser(
        prog='srdiff-infer fuse',
        description='Content fusion (paper 5.4): a box of HR image A (--source) pasted into HR image B (--target), '
                    'diffused to t_bar and denoised with B\'s LR; small t_bar keeps more of A.')
    parser.add_argument('--target', required=True, help='HR image B')
    parser.add_argument('--source', required=True, help='HR image A, the same size as B')
    parser.add_argument('--box', required=True, help='TOP,LEFT,HEIGHT,WIDTH of the region, in HR pixels')
    parser.add_argument('--lr', help="B's LR image (default: B downscaled by MATLAB bicubic)")
    parser.add_argument('-o', '--output', required=True, help='output image file')
    _model_arguments(parser)
    return parser


def run_fuse(args):
    try:
        top, left, height, width = (int(v) for v in args.box.split(','))
    except ValueError:
        raise ValueError(f'--box: expected TOP,LEFT,HEIGHT,WIDTH integers, got {args.box!r}') from None
    if min(top, left) < 0 or min(height, width) < 1:
        raise ValueError(f'--box {args.box}: TOP and LEFT must be >= 0 and HEIGHT and WIDTH >= 1')
    _check_output(args.output, args.force, (args.target, args.source, args.lr))
    pipe = build_pipeline(args, sampling=False)  # the paper's DDPM from t_bar, whole images
    hr_b, hr_a = _rgb(args.target, pipe.device), _rgb(args.source, pipe.device)
    if hr_a.shape != hr_b.shape:
        raise ValueError(f'--source {tuple(hr_a.shape[-2:])} and --target {tuple(hr_b.shape[-2:])} sizes differ')
    lq_b = _rgb(args.lr, pipe.device) if args.lr else _lr_of(hr_b, pipe.scale)
    mask = torch.zeros_like(hr_b[:, :1])
    mask[..., top:top + height, left:left + width] = 1
    if not mask.any():
        raise ValueError(f'--box {args.box}: the region is outside the {tuple(hr_b.shape[-2:])} image')
    generator = torch.Generator(pipe.device).manual_seed(args.seed)
    _write(args.output, content_fusion(pipe, lq_b, hr_b, hr_a, mask, args.t_bar, generator))
    print(f'wrote {args.output}')
    return 0


COMMANDS = {'interpolate': (run_interpolate, interpolate_parser), 'fuse': (run_fuse, fuse_parser)}
