"""``srdiff-infer``: super-resolve an image or a folder of images with a trained SRDiff.

    srdiff-infer INPUT -o OUTPUT_DIR --model experiments/demo_srdiff_x4 [--sampler dpmpp_2m --steps 20]
        [--num-samples 3] [--seed 0] [--tile 256 --tile-overlap 64] [--colour-fix wavelet]
        [--device cuda --half --channels-last --batch 8]
    srdiff-infer interpolate ...   (latent interpolation; see srdiff-infer interpolate -h)
    srdiff-infer fuse ...          (content fusion; see srdiff-infer fuse -h)

Every image is sampled with the same seed, so the same command gives the same output. Existing outputs
are kept unless --force. Files that cannot be read are reported and skipped; the exit status is 1 when
any image failed, 2 for a bad command line, model or option.
"""
import argparse
import os
import sys
from os import path as osp

import torch
from tqdm import tqdm

from srdiff_basicsr.cli import USER_ERRORS
from srdiff_basicsr.inference.images import (ImageReadError, list_inputs, read_image, to_array, upscale_alpha,
                                             write_image)
from srdiff_basicsr.inference.model_loading import load_srdiff
from srdiff_basicsr.ops.colour import COLOUR_FIXES


def add_model_arguments(parser):
    group = parser.add_argument_group('model')
    group.add_argument('--model', required=True,
                       help='experiment folder, converted official checkpoint folder, or a net_g_*.pth file')
    group.add_argument('--encoder', help='encoder weights (default: found next to --model)')
    group.add_argument('--options', help='options file with network_g/network_encoder (default: found with --model)')
    group.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    group.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'],
                       help='autocast precision of the networks (fp16 on CUDA only)')
    group.add_argument('--half', action='store_true', help='the same as --precision fp16 (CUDA only)')
    group.add_argument('--channels-last', action='store_true', help='channels_last memory format (GPU speed)')
    group.add_argument('--compile', action='store_true', help='torch.compile the U-Net (pays off on many images)')
    group.add_argument('--seed', type=int, default=0, help='sampling seed (same seed, same output)')


def add_sampling_arguments(parser):
    group = parser.add_argument_group('sampling')
    group.add_argument('--sampler', default='ddpm', choices=['ddpm', 'ddim', 'dpmpp_2m', 'ode'],
                       help='ddpm: the paper\'s 100 steps; ddim/dpmpp_2m: --steps; ode: adaptive (--rtol/--atol)')
    group.add_argument('--steps', type=int, help='network evaluations of ddim / dpmpp_2m (default 20)')
    group.add_argument('--eta', type=float, help='DDIM noise (0: deterministic, 1: ancestral)')
    group.add_argument('--rtol', type=float, help='ODE solver tolerance (default 1e-3)')
    group.add_argument('--atol', type=float, help='ODE solver tolerance (default 1e-3)')
    group.add_argument('--tile', type=int, default=0,
                       help='tile side in output pixels for large images (0: whole image at once)')
    group.add_argument('--tile-overlap', type=int, default=64, help='output pixels shared by neighbouring tiles')
    group.add_argument('--tile-batch', type=int, default=1, help='tiles per network call')
    group.add_argument('--colour-fix', default='none', choices=COLOUR_FIXES,
                       help='match the colours of the bicubic upsampling: adain (mean/std) or wavelet (low band)')


def sampling_options(args):
    sampler = {'type': args.sampler}
    for key in ('steps', 'eta', 'rtol', 'atol'):
        if getattr(args, key) is not None:
            sampler[key] = getattr(args, key)
    tile = {'size': args.tile, 'overlap': args.tile_overlap, 'batch': args.tile_batch} if args.tile else None
    return sampler, tile


def prepare_model(args):
    if args.half and torch.device(args.device).type != 'cuda':
        raise ValueError('--half needs a CUDA device (--device cuda)')
    model = load_srdiff(args.model, args.device, args.encoder, args.options)
    sampler, tile = sampling_options(args)
    model.set_sampling(sampler, tile, args.colour_fix, where='command line')
    model.set_execution('fp16' if args.half else args.precision, args.channels_last, args.compile,
                        where='command line')
    return model


def output_paths(input_file, out_dir, num_samples):
    stem, ext = osp.splitext(osp.basename(input_file))
    if num_samples == 1:
        return [osp.join(out_dir, f'{stem}{ext}')]
    return [osp.join(out_dir, f'{stem}_s{k}{ext}') for k in range(num_samples)]


def super_resolve(model, batch, args):
    """Write the samples of ``batch`` (same-size images: (path, image, outputs)) from one sampling run;
    each image's noise comes from its own generator seeded with --seed, so batching changes nothing."""
    lq = torch.cat([image.rgb.expand(len(outputs), -1, -1, -1) for _, image, outputs in batch]).to(model.device)
    generators = [(torch.Generator(model.device).manual_seed(args.seed), len(outputs)) for _, _, outputs in batch]
    kind = model.sampler_opt['type']
    steps = None if kind == 'ode' else model.sampler_opt.get('steps', model.diffusion.num_timesteps)
    names = ', '.join(osp.basename(path) for path, _, _ in batch)
    with tqdm(total=steps, unit='step', desc=names, leave=False) as bar:
        model.step_callback = lambda nfe: bar.update(1)
        try:
            samples = iter(model.sample(lq, generators))
        finally:
            model.step_callback = None
    for _, image, outputs in batch:
        alpha = None if image.alpha is None else upscale_alpha(image.alpha.to(model.device), model.opt['scale'])
        for output in outputs:
            write_image(output, to_array(next(samples)[None], alpha, image.grayscale, image.max_value))


def run_super_resolution(args):
    inputs = list_inputs(args.input)
    if not inputs:
        raise FileNotFoundError(f'input: no images in {args.input}')
    os.makedirs(args.output, exist_ok=True)
    for path in inputs:
        if any(osp.exists(o) and osp.samefile(o, path) for o in output_paths(path, args.output, args.num_samples)):
            raise ValueError(f'-o {args.output}: the output of {path} would replace the input itself; '
                             'choose another output folder')
    model = prepare_model(args)
    done, skipped, failed = 0, 0, []
    pending = {}  # image size -> images waiting for a full batch
    with tqdm(total=len(inputs), unit='image', desc='images', disable=len(inputs) == 1) as progress:
        for path in inputs:
            outputs = output_paths(path, args.output, args.num_samples)
            if not args.force and all(osp.exists(o) for o in outputs):
                skipped += 1
                progress.update(1)
                continue
            try:
                image = read_image(path)
            except ImageReadError as error:
                failed.append(str(error))
                tqdm.write(f'skipped: {error}', file=sys.stderr)
                progress.update(1)
                continue
            size = tuple(image.rgb.shape[-2:])
            group = pending.setdefault(size, [])
            group.append((path, image, outputs))
            if len(group) == args.batch:
                super_resolve(model, pending.pop(size), args)
                done += len(group)
                progress.update(len(group))
        for group in pending.values():
            super_resolve(model, group, args)
            done += len(group)
            progress.update(len(group))
    print(f'{done} image(s) super-resolved into {args.output}, {skipped} kept (outputs exist; --force '
          f'to redo), {len(failed)} failed', file=sys.stderr)
    return 1 if failed else 0


def parser_for_super_resolution():
    parser = argparse.ArgumentParser(prog='srdiff-infer', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument('-o', '--output', required=True, help='output folder (created; same file names and formats)')
    parser.add_argument('--num-samples', type=int, default=1, help='SR samples per image (<name>_s<k> when > 1)')
    parser.add_argument('--force', action='store_true', help='overwrite existing outputs')
    parser.add_argument('--batch', type=int, default=1, help='images of the same size sampled together')
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('interpolate', 'fuse'):
        from srdiff_basicsr.inference import manipulation_cli
        command, parser_factory = manipulation_cli.COMMANDS[argv[0]]
        args = parser_factory().parse_args(argv[1:])
    else:
        command, args = run_super_resolution, parser_for_super_resolution().parse_args(argv)
        if args.num_samples < 1 or args.batch < 1:
            print('error: --num-samples and --batch must be at least 1', file=sys.stderr)
            return 2
    try:
        return command(args)
    except (*USER_ERRORS, ImageReadError, FileExistsError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2


def entry_point():
    sys.exit(main())


if __name__ == '__main__':
    entry_point()
