"""Where the weight files a StableSR stage starts from come from, and the check that they exist before any folder
is made (``StableSRModel`` and ``CFWModel``'s ``check_run_options``)."""
from os import path as osp

from srdiff_basicsr.errors import OptionsError

STABLESR_SOURCES = ("convert StableSR's released stablesr_000117.ckpt and vqgan_cfw_00011.ckpt (github.com/IceClear/"
                    'StableSR) with scripts/convert_stablesr_checkpoint.py, or Stable Diffusion 2.1-base in diffusers\' '
                    'format (huggingface.co/stabilityai/stable-diffusion-2-1-base) with scripts/convert_sd_diffusers.py')


def check_starting_weights(opt, keys):
    """The files ``path.<key>`` of ``keys`` exist; else what to download and convert."""
    for key in keys:
        path = (opt.get('path') or {}).get(key)
        if isinstance(path, str) and not osp.isfile(path):
            raise OptionsError(f'path.{key}: no file {path}; {STABLESR_SOURCES}')
