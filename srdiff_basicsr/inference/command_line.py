"""The flags every ``srdiff-infer`` command shares, and the pipeline they describe.

The sampler flags are read off the sampler table: a new sampler or sampler option appears here by itself.
"""
import argparse

import torch

from srdiff_basicsr.diffusion.samplers import SAMPLERS
from srdiff_basicsr.diffusion.space import VAE_FACTOR, valid_vae_tile
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.ops.colour import COLOUR_FIXES
from srdiff_basicsr.execution import PRECISION_CHOICES
from srdiff_basicsr.pipeline import SRDiffPipeline, check_device


def add_model_arguments(parser):
    group = parser.add_argument_group('model')
    group.add_argument('--model', required=True,
                       help='experiment folder, converted official checkpoint folder, or a net_g_* weight file '
                            '(.pth or .safetensors)')
    group.add_argument('--encoder', help='encoder weights (default: found next to --model)')
    group.add_argument('--options', help='options file with network_g/network_encoder (default: found with --model)')
    group.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                       help='cpu, cuda or cuda:N')
    group.add_argument('--precision', default='auto', choices=PRECISION_CHOICES,
                       help='autocast precision of the networks (auto: bf16 where the device computes it natively, '
                            'else fp32; fp16 on CUDA only)')
    group.add_argument('--half', action='store_true', help='the same as --precision fp16 (CUDA only)')
    group.add_argument('--channels-last', action=argparse.BooleanOptionalAction,
                       help='channels_last memory format (default: on with the bf16 that auto picks)')
    group.add_argument('--compile', action='store_true', help='torch.compile the U-Net (pays off on many images)')
    group.add_argument('--seed', type=int, default=0, help='sampling seed (same seed, same output)')


def sampler_flags():
    """Every sampler option of the table: name -> (type, help naming the samplers that take it and their defaults)."""
    flags = {}
    for sampler_name, sampler in sorted(SAMPLERS.items()):
        for name, option in sampler.options.items():
            kind, text, users = flags.get(name, (type(option.default), option.help, []))
            flags[name] = kind, text, users + [f'{sampler_name} {option.default}']
    return {name: (kind, f"{text} (default: {', '.join(users)})") for name, (kind, text, users) in flags.items()}


def add_sampling_arguments(parser):
    group = parser.add_argument_group('sampling')
    group.add_argument('--sampler', choices=sorted(SAMPLERS),
                       help="default: the model's own (DDIM in its steps for a distilled student, else ddpm); " +
                       '; '.join(f'{name}: {sampler.description}' for name, sampler in sorted(SAMPLERS.items())))
    for name, (kind, text) in sampler_flags().items():
        flags = dict.fromkeys([f'--{name.replace("_", "-")}', f'--{name}'])  # --end-step and --end_step
        group.add_argument(*flags, dest=name, type=kind, help=text)
    group.add_argument('--tile', type=int, default=0,
                       help='tile side in output pixels for large images (0: whole image at once)')
    group.add_argument('--tile-overlap', type=int, default=64, help='output pixels shared by neighbouring tiles')
    group.add_argument('--tile-batch', type=int, default=1, help='tiles per network call')
    group.add_argument('--colour-fix', default='none', choices=COLOUR_FIXES,
                       help='match the colours of the bicubic upsampling: adain (mean/std) or wavelet (low band)')
    group.add_argument('--vae-tile', type=int, default=0,
                       help="for a latent model (StableSR): the VAE's tile side in output pixels, a multiple of 16, "
                            'overlapping by half (0: whole images); bounds the VAE\'s memory at any image size')
    group.add_argument('--fidelity', type=float,
                       help="CFW's weight for a model with one (StableSR): 0 the plain VAE decoder (most realistic) "
                            "to 1 (closest to the LR image); default: the model's (StableSR's scripts: 0.5)")


def sampling_options(args, model_sampler):
    """(sampler options, tile options) of the command line: the options given, for the sampler named, or
    over the model's own sampler ``model_sampler`` (its options kept unless given) when none is named."""
    sampler = {'type': args.sampler} if args.sampler else dict(model_sampler)
    for name in sampler_flags():
        if getattr(args, name) is not None:
            sampler[name] = getattr(args, name)
    tile = {'size': args.tile, 'overlap': args.tile_overlap, 'batch': args.tile_batch} if args.tile else None
    return sampler, tile


def vae_tile(size):
    """``--vae-tile``: the latent space's VAE on tiles of ``size`` output pixels overlapping by half."""
    tile = {'size': size, 'overlap': size // 2}
    if not valid_vae_tile(tile):
        raise OptionsError(f'--vae-tile: must be a positive multiple of {2 * VAE_FACTOR} output pixels (it and its '
                           f'overlap, half of it, whole latent pixels of {VAE_FACTOR}), got {size}')
    return tile


def build_pipeline(args, sampling=True):
    """The pipeline of ``--model`` with the command line's execution options, and its sampling options when
    ``sampling`` (else the paper's sampler on whole images)."""
    if check_device(args.device, '--device').type != 'cuda' and args.half:
        raise ValueError('--half needs a CUDA device (--device cuda)')
    pipe = SRDiffPipeline.from_pretrained(args.model, args.encoder, args.options, device=args.device)
    if sampling:
        sampler, tile = sampling_options(args, pipe.sampler_opt)
        pipe.set_sampling(sampler, tile, args.colour_fix, where='command line')
    space_options = {}  # options of the model's space (its SPACES entry checks them)
    if getattr(args, 'fidelity', None) is not None:
        space_options['fidelity'] = args.fidelity
    if getattr(args, 'vae_tile', 0):
        space_options['vae_tile'] = vae_tile(args.vae_tile)
    if space_options:
        pipe.set_space_options({'fidelity': '--fidelity', 'vae_tile': '--vae-tile'}, **space_options)
    pipe.set_execution(args.device, 'fp16' if args.half else args.precision, args.channels_last, args.compile,
                       where='command line')
    return pipe
