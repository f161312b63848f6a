"""A fixed test set of real-world degradations: the HR images of a folder degraded by an options file's
``degradation`` (kernels drawn by its RealESRGANDataset settings), seeded, as paired folders OUT/HR and OUT/LR.

    python scripts/degrade_images.py -opt options/demo_srdiff_realesrgan_x4.yml --hr datasets/demo/val/HR \
        -o datasets/demo/val_realesrgan [--seed 0]

Rerunning skips the pairs that exist (image i is made with seed + i, so they are the same).
"""
import argparse
import sys

import yaml

import srdiff_basicsr.plugin  # noqa: F401  (BasicSR fixed and registered)
from srdiff_basicsr.data.degraded_test_set import degrade_folder
from srdiff_basicsr.errors import USER_ERRORS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='options file with `degradation` and a RealESRGANDataset')
    parser.add_argument('--hr', required=True, help='folder of HR images')
    parser.add_argument('-o', '--out', required=True, help='output folder (HR/ and LR/ are made in it)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        with open(args.opt) as f:
            opt = yaml.safe_load(f)
        written = degrade_folder(args.hr, args.out, opt, args.seed)
    except USER_ERRORS as error:
        sys.exit(f'error: {error}')
    print(f'{written} pair(s) written to {args.out}')


if __name__ == '__main__':
    main()
