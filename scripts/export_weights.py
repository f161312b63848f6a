"""Export a BasicSR weight file as ``.safetensors`` (the format traiNNer-redux, spandrel and chaiNNer read).

    python scripts/export_weights.py experiments/demo_srdiff_x4/models/net_g_latest.pth [--key params_ema] [-o OUT]

A BasicSR ``.pth`` holds ``{'params': state_dict}`` (and ``params_ema`` with EMA); a ``.safetensors`` file
holds one flat state dict, so one key is exported: ``--key``, default ``params_ema`` when present, else
``params``. OUT defaults to the input with the ``.safetensors`` extension; an existing file is kept
unless --force. ``srdiff-infer --model`` and the options' ``pretrain_network_*`` read either format.
"""
import argparse
import sys
from os import path as osp

from srdiff_basicsr.errors import WeightsError
from srdiff_basicsr.loading.weights import read_state_dict, write_state_dict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('weights', help='a BasicSR .pth weight file')
    parser.add_argument('--key', help='the state dict to export (default: params_ema when present, else params)')
    parser.add_argument('-o', '--out', help='output .safetensors file (default: beside the input)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing output')
    args = parser.parse_args(argv)
    out = args.out or osp.splitext(args.weights)[0] + '.safetensors'
    try:
        if not out.endswith('.safetensors'):
            raise WeightsError(f'-o {out}: the output must end in .safetensors')
        if osp.exists(out) and not args.force:
            raise WeightsError(f'{out} exists; --force to overwrite')
        # params_ema falls back to params when absent, as BasicSR's loader does
        state_dict = read_state_dict(args.weights, args.key or 'params_ema', option=args.weights,
                                     fallback=args.key is None)  # a --key given is that key or an error
        write_state_dict(state_dict, out)
    except WeightsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {out} ({len(state_dict)} tensors)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
