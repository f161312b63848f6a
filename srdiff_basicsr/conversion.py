"""What the checkpoint converters (scripts/convert_*_checkpoint.py) share: their output flags and the folder
they write: ``net_g_official``, ``net_encoder_official`` (and a model's other networks, ``net_vae_official``;
``.pth`` or ``.safetensors``) and ``network_options.yml``, which ``SRDiffPipeline.from_pretrained`` and
``srdiff-infer --model`` read."""
import os
import sys
from os import path as osp

import yaml

from srdiff_basicsr.weights import write_state_dict


def add_output_arguments(parser):
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='load with full unpickling (only for files you trust) if the safe loader refuses')
    parser.add_argument('--format', choices=['pth', 'safetensors'], default='pth',
                        help="pth: BasicSR's {'params': state_dict}; safetensors: the flat state dict")
    parser.add_argument('--force', action='store_true', help='overwrite existing output files')


def fail(message):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def check_output_folder(args, networks=('g', 'encoder')):
    """Before any work: ``--out`` must be a folder (or not exist) and hold no earlier output unless --force."""
    if osp.exists(args.out) and not osp.isdir(args.out):
        fail(f'--out {args.out} is a file; it must name a folder (created if missing)')
    names = [f'net_{name}_official.{args.format}' for name in networks] + ['network_options.yml']
    existing = [name for name in names if osp.exists(osp.join(args.out, name))]
    if existing and not args.force:
        fail(f'{", ".join(existing)} already in {args.out}; pass --force to overwrite')


def write_converted(args, state_dicts, options):
    """``state_dicts`` ({'g': ..., 'encoder': ..., other networks}) as ``net_<name>_official`` and the options."""
    files = [f'net_{name}_official.{args.format}' for name in state_dicts]
    try:
        os.makedirs(args.out, exist_ok=True)
        for name, file in zip(state_dicts, files):
            write_state_dict(state_dicts[name], osp.join(args.out, file))
        with open(osp.join(args.out, 'network_options.yml'), 'w') as f:
            yaml.safe_dump(options, f, sort_keys=False, default_flow_style=None)
    except OSError as error:
        fail(f'--out {args.out}: cannot write there ({error.strerror or error})')
    print(yaml.safe_dump(options, sort_keys=False, default_flow_style=None))
    print(f'wrote {", ".join(files)} and network_options.yml to {args.out}')
