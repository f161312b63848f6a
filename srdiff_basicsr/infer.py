"""``srdiff-infer``: super-resolve an image or a folder of images with a trained SRDiff.

    srdiff-infer INPUT -o OUTPUT_DIR --model experiments/demo_srdiff_x4 [--sampler dpmpp_2m --steps 20]
        [--num-samples 3] [--seed 0] [--tile 256 --tile-overlap 64] [--colour-fix wavelet]
        [--device cuda --half --channels-last --batch 8] [--outscale 3.5 --suffix out --ext png]
        [--alpha-upsampler model] [--start lr] [--recipe old|tile --input-size 512]  (StableSR's scripts)
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

import cv2
import torch
import torch.nn.functional as F
from tqdm import tqdm

from srdiff_basicsr.diffusion.samplers import expected_nfe
from srdiff_basicsr.diffusion.tiling import tile_multiple
from srdiff_basicsr.errors import USER_ERRORS, ImageReadError
from srdiff_basicsr.inference import manipulation_cli
from srdiff_basicsr.inference.command_line import add_model_arguments, add_sampling_arguments, build_pipeline
from srdiff_basicsr.inference.images import list_inputs, read_image, to_array, upscale_alpha, write_image
from srdiff_basicsr.inference.stablesr_recipes import RECIPE_DEFAULTS, RECIPES, run_recipe


# formats that cannot hold what an input has: alpha, 16 bits
NO_ALPHA, EIGHT_BIT_ONLY = ('.jpg', '.jpeg', '.bmp'), ('.jpg', '.jpeg', '.bmp', '.webp')


def output_paths(input_file, out_dir, num_samples, suffix=None, ext='auto'):
    """``<stem>[_<suffix>][_s<k>].<ext>`` (``ext`` auto: the input's)."""
    stem, input_ext = osp.splitext(osp.basename(input_file))
    stem += f'_{suffix}' if suffix else ''
    ext = input_ext if ext == 'auto' else f'.{ext}'
    if num_samples == 1:
        return [osp.join(out_dir, f'{stem}{ext}')]
    return [osp.join(out_dir, f'{stem}_s{k}{ext}') for k in range(num_samples)]


def check_output_format(path, image, output):
    """An ImageReadError when the output's format cannot hold the image's alpha or 16 bits."""
    ext = osp.splitext(output)[1].lower()
    if image.alpha is not None and ext in NO_ALPHA:
        raise ImageReadError(f'{path}: has an alpha channel, which {ext} cannot hold; use --ext png (or tif, webp)')
    if image.max_value > 255 and ext in EIGHT_BIT_ONLY:
        raise ImageReadError(f'{path}: is 16-bit, which {ext} cannot hold; use --ext png (or tif)')


def out_of_memory_hint(pipe, image):
    """What would fit: tiles of about half the output's side (a multiple the model takes), or smaller batches."""
    multiple = tile_multiple(pipe.scale, pipe.unet.divisor, getattr(pipe.unet, 'window_grid', 1)) * pipe.space.factor
    side = min(image.rgb.shape[-2:]) * pipe.scale // 2
    tile = max(multiple, side - side % multiple)
    return (f' (out of memory for the whole {image.rgb.shape[-1] * pipe.scale}x{image.rgb.shape[-2] * pipe.scale} '
            f'output: try --tile {tile} --tile-overlap {tile // 4}, or --batch 1)')


def resized(array, outscale, input_size):
    """The written array at ``outscale`` x the input's size (Real-ESRGAN's --outscale: Lanczos from the model's)."""
    h, w = input_size
    size = (max(1, round(w * outscale)), max(1, round(h * outscale)))
    return array if array.shape[1::-1] == size else cv2.resize(array, size, interpolation=cv2.INTER_LANCZOS4)


def write_output(output, array, image, args):
    """``array`` written to ``output``, at --outscale x the input's size when given."""
    write_image(output, array if args.outscale is None else resized(array, args.outscale, image.rgb.shape[-2:]))


def super_resolve_group(pipe, group, args):
    """``super_resolve`` for a group; on a failure, each of its images is reported (the folder goes on)."""
    try:
        super_resolve(pipe, group, args)
        return []
    except Exception as error:  # noqa: BLE001  (one image must not stop a folder)
        hint = out_of_memory_hint(pipe, group[0][1]) if 'out of memory' in str(error).lower() else ''
        failures = [f'{path}: {type(error).__name__}: {error}{hint}' for path, _, _ in group]
        for failure in failures:
            tqdm.write(f'failed: {failure}', file=sys.stderr)
        return failures


def super_resolve_by_recipe(pipe, batch, args):
    """``--recipe``: each image of ``batch`` through StableSR's script (``inference.stablesr_recipes``), its samples
    together, their noise from --seed (each image tile's anew, as the script), truncated to 8 bits as it writes."""
    for path, image, outputs in batch:
        lq = image.rgb.expand(len(outputs), -1, -1, -1).to(pipe.device)
        samples = run_recipe(args.recipe, pipe, lq, lambda: torch.Generator(pipe.device).manual_seed(args.seed),
                             input_size=args.input_size, image_tile=args.image_tile, image_stride=args.image_stride)
        alpha = None if image.alpha is None else F.interpolate(
            image.alpha.to(pipe.device), size=samples.shape[-2:], mode='bicubic').clamp(0, 1)
        for k, output in enumerate(outputs):
            write_output(output, to_array(samples[k:k + 1], alpha, image.grayscale, image.max_value, truncate=True),
                         image, args)


def super_resolve(pipe, batch, args):
    """Write the samples of ``batch`` (same-size images: (path, image, outputs)) from one sampling run;
    each image's noise comes from its own generator seeded with --seed, so batching changes nothing."""
    if args.recipe:
        return super_resolve_by_recipe(pipe, batch, args)
    lq = torch.cat([image.rgb.expand(len(outputs), -1, -1, -1) for _, image, outputs in batch]).to(pipe.device)
    generators = [(torch.Generator(pipe.device).manual_seed(args.seed), len(outputs)) for _, _, outputs in batch]
    names = ', '.join(osp.basename(path) for path, _, _ in batch)
    samples = iter(sampled(pipe, lq, generators, names, None if args.start == 'noise' else 'lr'))
    for path, image, outputs in batch:
        alpha = None if image.alpha is None else upscale_alpha(image.alpha.to(pipe.device), pipe.scale)
        if alpha is not None and args.alpha_upsampler == 'model':  # the alpha as a grey image, its samples' mean
            grey = image.alpha.expand(len(outputs), 3, -1, -1).to(pipe.device)
            generator = [(torch.Generator(pipe.device).manual_seed(args.seed), len(outputs))]
            alpha = sampled(pipe, grey, generator, f'{osp.basename(path)} (alpha)').mean(1, keepdim=True)
        for k, output in enumerate(outputs):
            write_output(output, to_array(next(samples)[None], None if alpha is None else alpha[k % len(alpha)][None],
                                          image.grayscale, image.max_value), image, args)


def sampled(pipe, lq, generators, name, start=None):
    """The pipeline's samples of ``lq`` with a progress bar of its steps (shown on a terminal only)."""
    with tqdm(total=expected_nfe(pipe.sampler_opt, pipe.schedule.num_timesteps), unit='step', desc=name,
              leave=False, disable=None) as bar:
        return pipe(lq, generator=generators, on_step=lambda nfe: bar.update(1), start=start)


def paths_of(path, args):
    return output_paths(path, args.output, args.num_samples, args.suffix, args.ext)


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
        if any(osp.exists(o) and osp.samefile(o, path) for o in paths_of(path, args)):
            raise ValueError(f'-o {args.output}: the output of {path} would replace the input itself; '
                             'choose another output folder')
    if args.recipe and args.start == 'lr':
        raise ValueError('--start: a --recipe starts as its script does (old: noise, tile: the LR latent)')
    pipe = build_pipeline(args)
    if args.recipe:
        pipe.at_output_size()  # a latent model, or the error saying why not
    print(f'{pipe.describe()}; {pipe.describe_execution()}', file=sys.stderr)
    try:  # only once the model loads: a bad --model leaves nothing behind
        os.makedirs(args.output, exist_ok=True)
    except OSError as error:
        raise ValueError(f'-o {args.output}: cannot make this folder ({error.strerror or error})') from None
    done, skipped, failed = 0, 0, []
    pending = {}  # image size -> images waiting for a full batch
    with tqdm(total=len(inputs), unit='image', desc='images', disable=True if len(inputs) == 1 else None) as progress:
        for path in inputs:
            outputs = paths_of(path, args)
            if not args.force and all(osp.exists(o) for o in outputs):
                skipped += 1
                progress.update(1)
                continue
            try:
                image = read_image(path)
                check_output_format(path, image, outputs[0])
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
    parser.add_argument('--outscale', type=float,
                        help="output size as a multiple of the input's (default: the model's scale); the model's "
                             'output resized by Lanczos, as Real-ESRGAN')
    parser.add_argument('--suffix', help='added to each output name: <name>_<suffix>.<ext>')
    parser.add_argument('--ext', default='auto', choices=['auto', 'png', 'jpg', 'webp', 'tif', 'bmp'],
                        help="output format (auto: the input's); one that cannot hold an input's alpha or 16 bits "
                             'is refused for that image')
    parser.add_argument('--alpha-upsampler', default='bicubic', choices=['bicubic', 'model'],
                        help='an alpha channel upscaled by MATLAB bicubic, or super-resolved by the model as a grey '
                             'image (one more sampling per image)')
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    group = parser.add_argument_group("StableSR's scripts")
    group.add_argument('--start', default='noise', choices=['noise', 'lr'],
                       help='sampling starts from pure noise, or from the LR\'s own x0 noised to the last step (its '
                            "latent for StableSR: the tile script's start)")
    group.add_argument('--recipe', choices=sorted(RECIPES),
                       help="a latent model (StableSR) run as one of StableSR's scripts: old (Lanczos to 32 px, "
                            'Resize + CenterCrop to --input-size, pure noise) or tile (bicubic by max(--input-size / '
                            'shorter side, scale), reflect padding to 32, the LR latent noised to step 999, canvas '
                            'tiles of --input-size, image tiles above --image-tile); outputs truncated to 8 bits')
    group.add_argument('--input-size', type=int,
                       help=f"the scripts' input_size (default {RECIPE_DEFAULTS['input_size']})")
    group.add_argument('--image-tile', type=int,
                       help=f"tile: whole-pipeline image tiles above this many pixels (default "
                            f"{RECIPE_DEFAULTS['image_tile']})")
    group.add_argument('--image-stride', type=int,
                       help=f"tile: their stride (default {RECIPE_DEFAULTS['image_stride']})")
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
        if args.outscale is not None and not args.outscale > 0:
            print(f'error: --outscale: must be a number > 0, got {args.outscale}', file=sys.stderr)
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
