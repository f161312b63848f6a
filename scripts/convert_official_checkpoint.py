"""Convert an official SRDiff checkpoint (github LeiaLi/SRDiff, e.g. model_ckpt_steps_300000.ckpt)
into this project's BasicSR-format weights:

    OUT/net_g_official.pth        {'params': SRDiffUNet weights}
    OUT/net_encoder_official.pth  {'params': SRDiffRRDBNet weights}
    OUT/network_options.yml       network_g / network_encoder / diffusion options read off the weights

(``--format safetensors``: ``net_g_official.safetensors`` and ``net_encoder_official.safetensors``, flat
state dicts, instead of the ``.pth`` files.)

Point an options file at them with path.pretrain_network_g and path.pretrain_network_encoder
(see options/test_srdiff_celeba.yml), then test with python -m srdiff_basicsr.test.

    python scripts/convert_official_checkpoint.py model_ckpt_steps_300000.ckpt \
        --out experiments/srdiff_celeba_official/models
"""
import argparse
import os
import sys
from os import path as osp

import yaml

from srdiff_basicsr.official import convert_official_state_dict, load_official_checkpoint
from srdiff_basicsr.weights import write_state_dict


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='official .ckpt file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='load with full unpickling (only for files you trust) if the safe loader refuses')
    parser.add_argument('--format', choices=['pth', 'safetensors'], default='pth',
                        help="pth: BasicSR's {'params': state_dict}; safetensors: the flat state dict")
    parser.add_argument('--force', action='store_true', help='overwrite existing output files')
    args = parser.parse_args()

    if osp.exists(args.out) and not osp.isdir(args.out):
        print(f'error: --out {args.out} is a file; it must name a folder (created if missing)', file=sys.stderr)
        sys.exit(2)
    try:
        unet_sd, encoder_sd, options = convert_official_state_dict(
            load_official_checkpoint(args.checkpoint, args.allow_pickle))
    except (ValueError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)

    outputs = {f'net_g_official.{args.format}': unet_sd, f'net_encoder_official.{args.format}': encoder_sd}
    existing = [name for name in [*outputs, 'network_options.yml'] if osp.exists(osp.join(args.out, name))]
    if existing and not args.force:
        print(f'error: {", ".join(existing)} already in {args.out}; pass --force to overwrite', file=sys.stderr)
        sys.exit(2)
    os.makedirs(args.out, exist_ok=True)
    for name, state_dict in outputs.items():
        write_state_dict(state_dict, osp.join(args.out, name))
    with open(osp.join(args.out, 'network_options.yml'), 'w') as f:
        yaml.safe_dump(options, f, sort_keys=False, default_flow_style=None)
    print(yaml.safe_dump(options, sort_keys=False, default_flow_style=None))
    print(f'wrote {", ".join(outputs)} and network_options.yml to {args.out}')


if __name__ == '__main__':
    main()
