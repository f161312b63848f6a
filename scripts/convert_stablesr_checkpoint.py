"""Convert StableSR's released checkpoints (github IceClear/StableSR) into this project's weights and the options
that reproduce it:

    OUT/net_g_official.*        StableSRUNet (SD 2.1's U-Net with SPADE; with the empty prompt's text embedding)
    OUT/net_encoder_official.*  TimeAwareEncoder
    OUT/net_vae_official.*      CFWAutoencoder (the VAE with the CFW fusion layers)
    OUT/model.yml               the manifest: the networks, diffusion (VAE latent, SD's schedule, eps) and sampler (200 DDPM steps)

The empty prompt's embedding is computed here, once, by the checkpoint's OpenCLIP text tower; sampling never needs
the text tower again. Then super-resolve with ``srdiff-infer IMAGES -o OUT --model OUT`` (``--fidelity`` for CFW's
weight, ``--sampler ddim --steps 50`` for speed).

    python scripts/convert_stablesr_checkpoint.py stablesr_000117.ckpt vqgan_cfw_00011.ckpt --out experiments/stablesr
"""
import argparse

import yaml

from srdiff_basicsr.conversion.output import add_output_arguments, check_output_folder, fail, write_converted
from srdiff_basicsr.conversion.srdiff import read_torch_checkpoint
from srdiff_basicsr.conversion.stablesr import RELEASED_CONFIG, config_from_official, convert_stablesr_checkpoints
from srdiff_basicsr.errors import USER_ERRORS


def read_model_section(path):
    """The ``model`` section of an official (OmegaConf) configuration file."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)['model']
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such configuration file') from None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ValueError(f'{path}: not an official configuration with a model section ({error})') from None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('diffusion', help="StableSR's diffusion checkpoint (stablesr_000117.ckpt)")
    parser.add_argument('cfw', help="StableSR's CFW autoencoder checkpoint (vqgan_cfw_00011.ckpt)")
    parser.add_argument('--scale', type=int, default=4, help='the SR factor the options default to (default 4)')
    parser.add_argument('--config', help="the diffusion model's official configuration (default: the released one, "
                                         'configs/stableSRNew/v2-finetune_text_T_512.yaml)')
    parser.add_argument('--cfw-config', help="the CFW autoencoder's official configuration (default: the released "
                                             'configs/autoencoder/autoencoder_kl_64x64x4_resi.yaml)')
    add_output_arguments(parser)
    args = parser.parse_args()
    check_output_folder(args, ('g', 'encoder', 'vae'))
    if (args.config is None) != (args.cfw_config is None):
        fail('--config and --cfw-config go together (both official configurations, or neither for the released ones)')
    try:
        config = RELEASED_CONFIG if args.config is None else config_from_official(
            read_model_section(args.config), read_model_section(args.cfw_config))
        state_dicts, options = convert_stablesr_checkpoints(read_torch_checkpoint(args.diffusion, args.allow_pickle),
                                                            read_torch_checkpoint(args.cfw, args.allow_pickle),
                                                            config, args.scale)
    except (ValueError, *USER_ERRORS) as error:
        fail(error)
    write_converted(args, state_dicts, options)


if __name__ == '__main__':
    main()
