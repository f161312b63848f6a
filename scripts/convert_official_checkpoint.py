"""Convert an official SRDiff checkpoint (github LeiaLi/SRDiff, e.g. model_ckpt_steps_300000.ckpt)
into this project's BasicSR-format weights:

    OUT/net_g_official.pth        {'params': SRDiffUNet weights}
    OUT/net_encoder_official.pth  {'params': SRDiffRRDBNet weights}
    OUT/model.yml                 the manifest: network_g / network_encoder / diffusion options read off the weights

(``--format safetensors``: ``net_g_official.safetensors`` and ``net_encoder_official.safetensors``, flat
state dicts, instead of the ``.pth`` files.)

Point an options file at them with path.pretrain_network_g and path.pretrain_network_encoder
(see options/test_srdiff_celeba.yml), then test with python -m srdiff_basicsr.test.

    python scripts/convert_official_checkpoint.py model_ckpt_steps_300000.ckpt \
        --out experiments/srdiff_celeba_official/models
"""
import argparse

from srdiff_basicsr.conversion.output import add_output_arguments, check_output_folder, fail, write_converted
from srdiff_basicsr.conversion.srdiff import convert_official_state_dict, load_official_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='official .ckpt file')
    add_output_arguments(parser)
    args = parser.parse_args()
    check_output_folder(args)
    try:
        unet_sd, encoder_sd, options = convert_official_state_dict(
            load_official_checkpoint(args.checkpoint, args.allow_pickle))
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    write_converted(args, {'g': unet_sd, 'encoder': encoder_sd}, options)


if __name__ == '__main__':
    main()
