"""StableSR's two official inference scripts as recipes around a latent pipeline (IceClear/StableSR, scripts/): how
the input is brought to the size the model samples at, where sampling starts, whether the image is cut first, how
the output is brought back, and its 8-bit truncation. Each recipe is one function of ``RECIPES``:
(pipeline, LR batch in [0, 1], seed, options) -> the SR in [0, 1] at the script's output size.

- ``old`` (sr_val_ddpm_text_T_vqganfin_old.py): the LR resized by Lanczos to whole multiples of 32 px, then
  torchvision's ``Resize(input_size)`` (the shorter side; bilinear, antialiased) and ``CenterCrop(input_size)``;
  sampled from pure noise on the whole latent: an ``input_size`` square output.
- ``tile`` (sr_val_ddpm_text_T_vqganfin_oldcanvas_tile.py): bicubic (``F.interpolate``, sizes truncated) by
  s = max(input_size / shorter side, scale), reflect-padded to a multiple of 32 px; sampled from the LR latent
  noised to the last step with the 1000-step tables, on latent canvas tiles of input_size / 8 overlapping by half
  (``tile_overlap``, 32 latent px); an image above ``image_tile`` px is cut into image tiles every
  ``image_stride`` px (the last flush with the end), each sampled from the seed anew and colour-fixed against
  itself, averaged where they overlap; then, when s was above the scale, bicubic back by scale / s (from the padded
  size, as the script; the padding is cropped only when it was not resized).
Both write ``sr * 255`` truncated to 8 bits (``srdiff-infer --recipe``), where ``srdiff-infer`` otherwise rounds.
"""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from srdiff_basicsr.diffusion.tiling import tile_options
from srdiff_basicsr.errors import OptionsError

# the scripts' settings; ``multiple``: the image sizes they keep (old: Lanczos to it, tile: reflect padding to it)
# (tile_overlap: the canvas tiles' overlap in output pixels, default half the input size: the script's 32 of 64)
RECIPE_DEFAULTS = {'input_size': 512, 'tile_overlap': None, 'image_tile': 1280, 'image_stride': 1000, 'multiple': 32}


def lanczos_to_multiple(lr, multiple=32):
    """The old script's ``load_img``: each side down to a whole multiple of ``multiple`` by PIL's Lanczos on the
    8-bit RGB image, as it reads it; unchanged when it is one already."""
    h, w = lr.shape[-2:]
    size = (w - w % multiple, h - h % multiple)
    if size == (w, h):
        return lr
    if 0 in size:
        raise OptionsError(f'--recipe old: the image is {w}x{h} px, under the {multiple} px a side the old script '
                           'resizes to; use --recipe tile')
    pixels = (lr.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    resized = [np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS)) for image in pixels]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).to(lr) / 255


def old_input(lr, input_size, multiple=32):
    """torchvision's ``Resize(input_size)`` + ``CenterCrop(input_size)`` of the (Lanczos-sized) LR, clamped."""
    from torchvision.transforms import functional as TF
    image = TF.resize(lanczos_to_multiple(lr, multiple) * 2 - 1, input_size, antialias=True)
    return ((TF.center_crop(image, input_size).clamp(-1, 1)) + 1) / 2


def old_recipe(pipe, lr, seed, opt):
    sampler = pipe.at_output_size()
    sampler.tile_opt = None  # the old script samples the whole latent
    return sampler(old_input(lr, opt['input_size'], opt['multiple']), generator=seed())


def tile_input(lr, scale, input_size, multiple=32):
    """(image in [0, 1] at the sampling size, reflect-padded to ``multiple`` px; s; the size before padding)."""
    h, w = lr.shape[-2:]
    s = max(input_size / min(h, w), scale)
    image = F.interpolate(lr * 2 - 1, size=(int(h * s), int(w * s)), mode='bicubic').clamp(-1, 1)
    size = image.shape[-2:]
    pad_h, pad_w = (-size[0]) % multiple, (-size[1]) % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode='reflect')
    return (image + 1) / 2, s, size


def image_tile_starts(length, tile, stride):
    """StableSR's ``ImageSpliterTh`` grid: every ``stride`` px, a start past the end moved flush with it (once)."""
    if length <= tile:
        return [0]
    starts = [min(start, length - tile) for start in range(0, length, stride)]
    return sorted(set(starts))


def tile_recipe(pipe, lr, seed, opt):
    image, s, size = tile_input(lr, pipe.scale, opt['input_size'], opt['multiple'])
    sampler = pipe.at_output_size()
    sampler.tile_opt = tile_options({**(pipe.tile_opt or {}), 'size': opt['input_size'],
                                     'overlap': opt['tile_overlap'], 'weights': pipe.space.tile_weights},
                                    1, pipe.unet.divisor, '--recipe tile: the latent canvas tile',
                                    unit=pipe.space.factor)
    h, w = image.shape[-2:]
    if max(h, w) <= opt['image_tile']:
        sr = sampler(image, generator=seed(), start='lr')
    else:  # each image tile sampled from the seed anew (the script's seed_everything per tile), averaged
        tile = opt['image_tile']
        sr, count = torch.zeros_like(image), torch.zeros_like(image[:, :1])
        for left in image_tile_starts(w, tile, opt['image_stride']):  # the script's order: down each column
            for top in image_tile_starts(h, tile, opt['image_stride']):
                box = (..., slice(top, top + tile), slice(left, left + tile))
                sr[box] += sampler(image[box], generator=seed(), start='lr', clamp=False)  # clamped once blended
                count[box] += 1
        sr = (sr / count).clamp(0, 1)
    if s > pipe.scale:  # from the padded size, as the script
        sr = F.interpolate(sr, size=(int(h * pipe.scale / s), int(w * pipe.scale / s)), mode='bicubic').clamp(0, 1)
    return sr[..., :size[0], :size[1]]


RECIPES = {'old': old_recipe, 'tile': tile_recipe}


@torch.no_grad()
def run_recipe(name, pipe, lr, seed, **options):
    """``RECIPES[name]`` of an LR batch; ``seed()`` gives a fresh generator of the run's seed (a tile's start)."""
    if name not in RECIPES:
        raise OptionsError(f'--recipe: must be one of {sorted(RECIPES)}, got {name!r}')
    opt = {**RECIPE_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    opt['tile_overlap'] = opt['input_size'] // 2 if opt['tile_overlap'] is None else opt['tile_overlap']
    multiple = opt['multiple']
    if multiple % pipe.space.factor or opt['input_size'] % multiple or opt['image_tile'] % multiple or not (
            0 < opt['image_stride'] <= opt['image_tile']):
        raise OptionsError(f'--input-size and --image-tile must be multiples of {multiple}, --image-stride from 1 to '
                           f"--image-tile; got {opt['input_size']}, {opt['image_tile']}, {opt['image_stride']}")
    return RECIPES[name](pipe, lr, seed, opt)

