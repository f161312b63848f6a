"""Convert Stable Diffusion 2.x-base in diffusers' folder format (e.g. a download of
stabilityai/stable-diffusion-2-1-base) into the start of StableSR's first stage, as the official starts from SD 2.1:

    OUT/net_g_official.*     StableSRUNet: SD's U-Net under the official names, with the empty prompt's embedding;
                             its SPADEs are not in the file (stage 1 initialises and trains them)
    OUT/net_vae_official.*   CFWAutoencoder without CFW (cfw: false): SD's VAE
    OUT/model.yml            the manifest: the networks (the time-aware encoder at the released sizes, trained from scratch)

    python scripts/convert_sd_diffusers.py stable-diffusion-2-1-base --out experiments/sd21_base --format safetensors
    python -m srdiff_basicsr.train -opt options/train_stablesr_stage1_sd21.yml

The empty prompt's embedding is computed here, once, by the folder's text encoder; training never needs it again.
The 768 models (v-prediction) are refused.
"""
import argparse

from srdiff_basicsr.conversion.diffusers_sd import convert_sd_folder
from srdiff_basicsr.conversion.output import add_output_arguments, check_output_folder, fail, write_converted
from srdiff_basicsr.errors import USER_ERRORS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder', help='the diffusers folder (unet/, vae/, text_encoder/, scheduler/)')
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    check_output_folder(args, ('g', 'vae'))
    try:
        state_dicts, options = convert_sd_folder(args.folder)
    except (ValueError, *USER_ERRORS) as error:
        fail(error)
    write_converted(args, state_dicts, options)


if __name__ == '__main__':
    main()
