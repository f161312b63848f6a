"""Convert an ECDP checkpoint (github Yuan-Yutao/ECDP, a trainer checkpoint with ``model`` and ``model_avg``)
into this project's BasicSR-format weights and the options that reproduce ECDP:

    OUT/net_g_official.pth        {'params': ECDPUNet weights}
    OUT/net_encoder_official.pth  {'params': SRDiffRRDBNet weights (ECDP's RRDB; no SR tail, zeros there)}
    OUT/model.yml                 the manifest: network_g / network_encoder / diffusion: ECDP's

ECDP's weights do not show the SR factor: give --scale (4 for its DF2K model, 8 for CelebA). Then sample with
``srdiff-infer IMAGES -o OUT --model OUT --sampler ode_vp`` (ECDP's probability flow), or test through
BasicSR with options/test_ecdp_*.yml pointed at the files.

    python scripts/convert_ecdp_checkpoint.py ecdp-df2k.pt --scale 4 --out experiments/ecdp_df2k_official
"""
import argparse

from srdiff_basicsr.conversion.ecdp import convert_ecdp_state_dict, load_ecdp_checkpoint
from srdiff_basicsr.conversion.output import add_output_arguments, check_output_folder, fail, write_converted


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help="ECDP's checkpoint file")
    parser.add_argument('--scale', type=int, required=True, choices=[2, 4, 8], help='the SR factor it was trained for')
    parser.add_argument('--weights', choices=['model_avg', 'model'], default='model_avg',
                        help='model_avg: the EMA weights ECDP evaluates with (default); model: the raw ones')
    parser.add_argument('--feature-blocks', type=int, nargs='+',
                        help="the RRDB blocks that condition the U-Net (ECDP's rrdb_block_selection; default "
                             'its own: 1 8 15 22 of 23, 1 3 5 7 of 8)')
    add_output_arguments(parser)
    args = parser.parse_args()
    check_output_folder(args)
    try:
        unet_sd, encoder_sd, options = convert_ecdp_state_dict(
            load_ecdp_checkpoint(args.checkpoint, args.weights, args.allow_pickle), args.scale, args.feature_blocks)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    write_converted(args, {'g': unet_sd, 'encoder': encoder_sd}, options)


if __name__ == '__main__':
    main()
