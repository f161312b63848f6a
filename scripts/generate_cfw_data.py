"""Sample the training data of StableSR's CFW stage (the second) with a first-stage model, as the official
``generate_vqgan_data.py``: for every LR/HR pair (matched by file name), OUT/inputs/<name>.png (the LR upsampled
as the model's VAE encodes it), OUT/gts/<name>.png and OUT/latents/<name>.npy (the sampled latent, scaled). Then
train the CFW layers on OUT with ``options/train_stablesr_stage2.yml`` (``CFWLatentDataset``).

    python scripts/generate_cfw_data.py LR_DIR HR_DIR -o datasets/cfw_train --model experiments/stablesr_stage1

Each image is sampled with its own generator seeded with --seed; the default start is the official one (x_T the
LR latent noised to the last step; --start noise: pure noise). Images already written are kept, so a stopped run
goes on where it was.
"""
import argparse
import sys

from tqdm import tqdm

from srdiff_basicsr.errors import USER_ERRORS
from srdiff_basicsr.inference.cfw_data import generate_cfw_data, matched_pairs
from srdiff_basicsr.inference.command_line import add_model_arguments, add_sampling_arguments, build_pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('lq', help='folder of LR images')
    parser.add_argument('gt', help='folder of the matching HR images (same names)')
    parser.add_argument('-o', '--output', required=True, help='the dataset folder to write')
    parser.add_argument('--start', choices=('lr', 'noise'), default='lr',
                        help='x_T: the LR latent noised to the last step (lr, the official) or pure noise')
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    args = parser.parse_args(argv)
    try:
        pairs = matched_pairs(args.lq, args.gt)
        pipe = build_pipeline(args)
        with tqdm(total=len(pairs), unit='image') as bar:
            generate_cfw_data(pipe, pairs, args.output, args.seed, None if args.start == 'noise' else 'lr',
                              on_image=lambda stem: bar.update(1))
    except USER_ERRORS as error:
        print(f'generate_cfw_data: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
