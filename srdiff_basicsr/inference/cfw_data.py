"""The data StableSR's CFW stage trains on, sampled by a first-stage model (the official ``generate_vqgan_data.py``):
for each HR/LR pair, the LR upsampled as the model's VAE encodes it, the HR, and the model's sampled latent."""
import os
from os import path as osp

import numpy as np
import torch

from srdiff_basicsr.archs.cfw_autoencoder_arch import CFWAutoencoder
from srdiff_basicsr.errors import DatasetError, OptionsError
from srdiff_basicsr.files import atomic_write
from srdiff_basicsr.inference.images import list_inputs, read_image, to_array, write_image

# the folders of StableSR's generate_vqgan_data.py, which this writes and CFWLatentDataset reads
FOLDERS = {'lq': 'inputs', 'gt': 'gts', 'latent': 'latents'}


def matched_pairs(lq_dir, gt_dir):
    """(lq, gt) paths of the images both folders hold by stem; an error naming any image one of them lacks."""
    stems = [{osp.splitext(osp.basename(p))[0]: p for p in list_inputs(folder)} for folder in (lq_dir, gt_dir)]
    unmatched = sorted(set(stems[0]) ^ set(stems[1]))
    if unmatched:
        raise DatasetError(f'{lq_dir} and {gt_dir}: {len(unmatched)} image(s) not in both: {", ".join(unmatched[:6])}')
    if not stems[0]:
        raise DatasetError(f'{lq_dir}: no images')
    return [(stems[0][s], stems[1][s]) for s in sorted(stems[0])]


def generate_cfw_data(pipe, pairs, out_dir, seed=0, start='lr', on_image=None):
    """Write ``out_dir``/inputs, gts (8-bit PNG) and latents (``.npy``, (1, C, H/f, W/f), scaled as the sampler
    made them) of each (lq, gt) pair, each image sampled with its own generator seeded by ``seed``; ``start``:
    ``'lr'`` (the official: x_T is the LR latent noised to the last step) or None (pure noise). An image whose
    latent exists is kept (a rerun goes on where one stopped); the latent is written last. Returns the stems
    written."""
    if not any(isinstance(net, CFWAutoencoder) for net in getattr(pipe.space, 'networks', ())):  # CFW trains its decoder
        raise OptionsError(f'--model: a {type(pipe.unet).__name__} model has no latent space; CFW data needs a '
                           'StableSR (first-stage) model')
    for folder in FOLDERS.values():
        os.makedirs(osp.join(out_dir, folder), exist_ok=True)
    written, f = [], pipe.space.factor
    for lq_path, gt_path in pairs:
        stem = osp.splitext(osp.basename(gt_path))[0]
        latent_path = osp.join(out_dir, FOLDERS['latent'], f'{stem}.npy')
        if osp.exists(latent_path):
            continue
        lr, gt = read_image(lq_path).rgb, read_image(gt_path).rgb
        h, w = gt.shape[-2:]
        if (h, w) != (lr.shape[-2] * pipe.scale, lr.shape[-1] * pipe.scale) or h % f or w % f:
            raise DatasetError(f'{gt_path} is {w}x{h} and {lq_path} {lr.shape[-1]}x{lr.shape[-2]}: the HR must be '
                               f'{pipe.scale} x the LR and a multiple of {f} (the VAE factor) on both sides')
        generator = torch.Generator(pipe.device).manual_seed(seed)
        x0, reference, crop = pipe.sample_space(lr, generator=generator, start=start)
        lr_up = pipe.space.colour_reference(reference)[crop].clamp(0, 1)
        for key, image in (('lq', lr_up), ('gt', gt)):
            write_image(osp.join(out_dir, FOLDERS[key], f'{stem}.png'), to_array(image, None, False, 255))
        with atomic_write(latent_path, keep_extension=True) as tmp:
            np.save(tmp, x0[..., :h // f, :w // f].float().cpu().numpy())
        written.append(stem)
        if on_image is not None:
            on_image(stem)
    return written
