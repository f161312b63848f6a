"""What the checkpoint converters (scripts/convert_*_checkpoint.py) share: their output flags and the folder
they write: ``net_g_official``, ``net_encoder_official`` (and a model's other networks, ``net_vae_official``;
``.pth`` or ``.safetensors``) and the manifest ``model.yml`` (``model_folder``), which
``SRDiffPipeline.from_pretrained`` and ``srdiff-infer --model`` read."""
import os
import sys
from os import path as osp

import yaml

from srdiff_basicsr.loading.model_folder import MANIFEST, write_manifest
from srdiff_basicsr.loading.weights import write_state_dict


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
    names = [f'net_{name}_official.{args.format}' for name in networks] + [MANIFEST]
    existing = [name for name in names if osp.exists(osp.join(args.out, name))]
    if existing and not args.force:
        fail(f'{", ".join(existing)} already in {args.out}; pass --force to overwrite')


def write_converted(args, state_dicts, options):
    """``state_dicts`` ({'g': ..., 'encoder': ..., other networks}) as ``net_<name>_official`` and the manifest of
    ``options`` (scale, network sections, diffusion; ``sampler``: the model's own) naming them."""
    files = {f'network_{name}': osp.join(args.out, f'net_{name}_official.{args.format}') for name in state_dicts}
    scale = {} if 'scale' in options or not options['network_g'].get('scale') else {  # the SRDiff converters' own
        'scale': options['network_g']['scale']}
    options = {**scale, **options}
    sampler = options.pop('sampler', None)
    try:
        os.makedirs(args.out, exist_ok=True)
        for name, file in zip(state_dicts, files.values()):
            write_state_dict(state_dicts[name], file)
        write_manifest(args.out, options, {section: (file, 'params') for section, file in files.items()}, sampler)
    except OSError as error:
        fail(f'--out {args.out}: cannot write there ({error.strerror or error})')
    print(yaml.safe_dump({**options, 'sampler': sampler}, sort_keys=False, default_flow_style=None))
    print(f'wrote {", ".join(osp.basename(file) for file in files.values())} and {MANIFEST} to {args.out}')
