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

from srdiff_basicsr.diffusion.samplers import expected_nfe
from srdiff_basicsr.errors import USER_ERRORS, ImageReadError
from srdiff_basicsr.inference import manipulation_cli
from srdiff_basicsr.inference.command_line import add_model_arguments, add_sampling_arguments, build_pipeline
from srdiff_basicsr.inference.images import list_inputs, read_image, to_array, upscale_alpha, write_image


def output_paths(input_file, out_dir, num_samples):
    stem, ext = osp.splitext(osp.basename(input_file))
    if num_samples == 1:
        return [osp.join(out_dir, f'{stem}{ext}')]
    return [osp.join(out_dir, f'{stem}_s{k}{ext}') for k in range(num_samples)]


def super_resolve_group(pipe, group, args):
    """``super_resolve`` for a group; on a failure, each of its images is reported (the folder goes on)."""
    try:
        super_resolve(pipe, group, args)
        return []
    except Exception as error:  # noqa: BLE001  (one image must not stop a folder)
        hint = ' (out of memory: try --tile 256 or a smaller --batch)' if 'out of memory' in str(error) else ''
        failures = [f'{path}: {type(error).__name__}: {error}{hint}' for path, _, _ in group]
        for failure in failures:
            tqdm.write(f'failed: {failure}', file=sys.stderr)
        return failures


def super_resolve(pipe, batch, args):
    """Write the samples of ``batch`` (same-size images: (path, image, outputs)) from one sampling run;
    each image's noise comes from its own generator seeded with --seed, so batching changes nothing."""
    lq = torch.cat([image.rgb.expand(len(outputs), -1, -1, -1) for _, image, outputs in batch]).to(pipe.device)
    generators = [(torch.Generator(pipe.device).manual_seed(args.seed), len(outputs)) for _, _, outputs in batch]
    names = ', '.join(osp.basename(path) for path, _, _ in batch)
    with tqdm(total=expected_nfe(pipe.sampler_opt, pipe.schedule.num_timesteps), unit='step', desc=names,
              leave=False) as bar:
        samples = iter(pipe(lq, generator=generators, on_step=lambda nfe: bar.update(1)))
    for _, image, outputs in batch:
        alpha = None if image.alpha is None else upscale_alpha(image.alpha.to(pipe.device), pipe.scale)
        for output in outputs:
            write_image(output, to_array(next(samples)[None], alpha, image.grayscale, image.max_value))


def run_super_resolution(args):
    inputs = list_inputs(args.input)
    if not inputs:
        raise FileNotFoundError(f'input: no images in {args.input}')
    if osp.exists(args.output) and not osp.isdir(args.output):
        raise ValueError(f'-o {args.output}: exists and is a file; -o must name a folder (created if missing)')
    if osp.isdir(args.input) and osp.isdir(args.output) and osp.samefile(args.input, args.output):
        raise ValueError(f'-o {args.output}: is the input folder; its outputs would be taken as inputs by a rerun '
                         '(or replace them): choose another output folder')
    for path in inputs:
        if any(osp.exists(o) and osp.samefile(o, path) for o in output_paths(path, args.output, args.num_samples)):
            raise ValueError(f'-o {args.output}: the output of {path} would replace the input itself; '
                             'choose another output folder')
    pipe = build_pipeline(args)
    print(f'{pipe.describe()}; {pipe.describe_execution()}', file=sys.stderr)
    try:  # only once the model loads: a bad --model leaves nothing behind
        os.makedirs(args.output, exist_ok=True)
    except OSError as error:
        raise ValueError(f'-o {args.output}: cannot make this folder ({error.strerror or error})') from None
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
                failures = super_resolve_group(pipe, pending.pop(size), args)
                failed += failures
                done += len(group) - len(failures)
                progress.update(len(group))
        for group in pending.values():
            failures = super_resolve_group(pipe, group, args)
            failed += failures
            done += len(group) - len(failures)
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
    if argv and argv[0] in manipulation_cli.COMMANDS:
        command, parser_factory = manipulation_cli.COMMANDS[argv[0]]
        args = parser_factory().parse_args(argv[1:])
    else:
        command, args = run_super_resolution, parser_for_super_resolution().parse_args(argv)
        if args.num_samples < 1 or args.batch < 1:
            print('error: --num-samples and --batch must be at least 1', file=sys.stderr)
            return 2
    try:
        return command(args)
    except (*USER_ERRORS, FileExistsError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted: the outputs written so far are complete; the same command goes on with the rest',
              file=sys.stderr)
        return 130


def entry_point():
    sys.exit(main())


if __name__ == '__main__':
    entry_point()
