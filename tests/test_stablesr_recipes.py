"""StableSR's two inference scripts as ``srdiff-infer --recipe`` runs them, on the tiny official networks: the old
script's input handling and its whole run against the golden ``f_pipeline_old``; the tile script's bicubic input,
reflect padding, t=999 start, latent canvas, resize back and truncation written out here from its code's facts
(the golden canvas and start are tested in test_stablesr_sampling / test_stablesr_golden_keys); its 1280-px image
tiles at a scaled-down tile size."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from srdiff_basicsr.diffusion.condition import TimeAwareCondition
from srdiff_basicsr.diffusion.noise import Replay, noise_source
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.samplers import run_sampler
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.diffusion.space import PixelResidualSpace, VAELatentSpace
from srdiff_basicsr.diffusion.tiling import TiledNetwork
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.inference.stablesr_recipes import (image_tile_starts, lanczos_to_multiple, old_input, run_recipe,
                                                       tile_input)
from srdiff_basicsr.pipeline import SRDiffPipeline

TINY = {'input_size': 64, 'tile_overlap': 32, 'multiple': 16}  # the scripts' 512 / 256 / 32 at the tiny size


@pytest.fixture(scope='module')
def pipe(stablesr_nets):
    unet, encoder, vae = stablesr_nets
    return SRDiffPipeline(encoder, unet, DiscreteSchedule.from_options('scaled_linear'), 4,
                          space=VAELatentSpace(vae, 4, fidelity=0.5), condition=TimeAwareCondition,
                          sampler={'type': 'ddpm_spaced', 'steps': 4}, precision='fp32')


def seeded(seed=3):
    return lambda: torch.Generator().manual_seed(seed)


def test_the_old_scripts_input_is_resize_and_centre_crop_of_its_lanczos_sized_image(stablesr_golden):
    run = stablesr_golden['f_pipeline_old']
    lr = (run['lr_image'] + 1) / 2
    assert torch.allclose(old_input(lr, 64, 16) * 2 - 1, run['init_image'], rtol=0, atol=1e-6)
    wide = torch.rand(1, 3, 40, 72, generator=torch.Generator().manual_seed(0))
    assert old_input(wide, 64, 8).shape == (1, 3, 64, 64)  # the shorter side to 64, the centre kept
    # load_img: down to whole multiples by PIL's Lanczos (here against PIL on the 8-bit image)
    pixels = (wide[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    sized = lanczos_to_multiple(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255, 32)
    expected = np.asarray(Image.fromarray(pixels).resize((64, 32), Image.LANCZOS)).astype(np.float32) / 255
    assert sized.shape == (1, 3, 32, 64)
    assert np.abs(sized[0].permute(1, 2, 0).numpy() - expected).max() <= 1e-6
    assert lanczos_to_multiple(wide, 8) is wide
    with pytest.raises(OptionsError, match='under the 32 px a side'):
        lanczos_to_multiple(wide[..., :20], 32)


def test_the_old_recipe_is_the_official_old_script_end_to_end(stablesr_golden, pipe):
    run = stablesr_golden['f_pipeline_old']
    draws = [run['latent_eps'], run['x_T'], *[step['noise'] for step in run['steps']]]
    sr = run_recipe('old', pipe, (run['lr_image'] + 1) / 2, lambda: Replay(list(draws)), **TINY)
    assert torch.allclose(sr, run['out_nofix'], rtol=0, atol=1e-4)


def test_the_tile_recipe_is_the_tile_scripts_steps(stablesr_nets, pipe):
    unet, encoder, vae = stablesr_nets
    lr = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(1))
    sr = run_recipe('tile', pipe, lr, seeded(), **TINY)

    # the script, step by step: s = max(64 / 12, 4); bicubic to int sizes; reflect-pad to 16; encode with the
    # posterior draw; x_T from the 1000-step tables at 999; canvas of 8-latent tiles overlapping by 4; CFW decode of
    # the padded image's features; clamp; bicubic back by 4 / s from the padded size; the padding crop (a no-op here)
    s = 64 / 12
    image = F.interpolate(lr * 2 - 1, size=(int(12 * s), int(20 * s)), mode='bicubic').clamp(-1, 1)
    assert image.shape[-2:] == (64, 106)
    image = F.pad(image, (0, 6, 0, 0), mode='reflect')
    prepared, _, size = tile_input(lr, 4, 64, 16)
    assert torch.allclose(prepared * 2 - 1, image, rtol=0, atol=1e-6) and tuple(size) == (64, 106)
    generator = seeded()()
    with torch.no_grad():
        (mean, logvar), features = vae.encode(image)
        latent = 0.18215 * (mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator))
        schedule = pipe.schedule
        x_T = (schedule.sqrt_alphas_cumprod[999] * latent
               + schedule.sqrt_one_minus_alphas_cumprod[999] * torch.randn(latent.shape, generator=generator))
        view = pipe.at_output_size()
        view.tile_opt = {'size': 64, 'overlap': 32, 'batch': 1, 'weights': 'stablesr'}
        network = view.network(TimeAwareCondition(encoder, latent, unet.empty_context), latent.shape[-2:],
                               view.tile_opt)
        x0 = run_sampler({'type': 'ddpm_spaced', 'steps': 4}, Denoiser(network, schedule, 'eps', clip_x0=False),
                         schedule, x_T, noise_source(generator))
        decoded = ((vae.decode(x0 / 0.18215, features, 0.5) + 1) / 2).clamp(0, 1)
    expected = F.interpolate(decoded, size=(int(64 * 4 / s), int(112 * 4 / s)), mode='bicubic').clamp(0, 1)
    assert sr.shape == expected.shape == (1, 3, 48, 84)  # the script keeps the resized padding (84, not 80)
    assert torch.allclose(sr, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(run_recipe('tile', pipe, lr, seeded(4), **TINY), sr, atol=1e-3)  # the seed is used


def test_the_tile_recipe_colour_fixes_against_the_upsampled_input_and_keeps_the_size_when_s_is_the_scale(pipe):
    lr = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(2))  # 4 x 16 = 64: s is the scale
    plain = run_recipe('tile', pipe, lr, seeded(), **TINY)
    assert plain.shape == (1, 3, 64, 96)  # no resize back: scale x the input
    original, pipe.colour_fix = pipe.colour_fix, 'adain'
    try:
        sr = run_recipe('tile', pipe, lr, seeded(), **TINY)
    finally:
        pipe.colour_fix = original
    reference = (F.interpolate(lr * 2 - 1, size=(64, 96), mode='bicubic').clamp(-1, 1) + 1) / 2
    # adain: each channel's mean (and std) the upsampled input's, before the clamp
    assert torch.allclose(sr.mean((-2, -1)), reference.mean((-2, -1)), atol=2e-2)
    assert not torch.allclose(plain.mean((-2, -1)), reference.mean((-2, -1)), atol=2e-2)


def test_image_tiles_follow_the_spliters_grid_each_sampled_from_the_seed_and_averaged(pipe):
    assert image_tile_starts(2500, 1280, 1000) == [0, 1000, 1220]  # the script's 1280 / 1000 on a 2500-px side
    assert image_tile_starts(1280, 1280, 1000) == [0] and image_tile_starts(2000, 1280, 1000) == [0, 720]
    lr = torch.rand(1, 3, 16, 32, generator=torch.Generator().manual_seed(5))  # 64 x 128 at x4
    sr = run_recipe('tile', pipe, lr, seeded(), **TINY, image_tile=64, image_stride=32)
    assert image_tile_starts(128, 64, 32) == [0, 32, 64]
    view = pipe.at_output_size()
    view.tile_opt = {'size': 64, 'overlap': 32, 'batch': 1, 'weights': 'stablesr'}
    image = (F.interpolate(lr * 2 - 1, size=(64, 128), mode='bicubic').clamp(-1, 1) + 1) / 2
    tiles = []
    for left in (0, 32, 64):
        x0, reference, crop = view.sample_space(image[..., left:left + 64], generator=seeded()(), start='lr')
        tiles.append(view.space.decode(x0, reference, clamp=False)[crop])
    assert torch.allclose(sr[..., :32], tiles[0][..., :32].clamp(0, 1), rtol=0, atol=1e-6)  # one tile only
    assert torch.allclose(sr[..., 32:64], ((tiles[0][..., 32:] + tiles[1][..., :32]) / 2).clamp(0, 1), rtol=0,
                          atol=1e-6)
    assert torch.allclose(sr[..., 96:], tiles[2][..., 32:].clamp(0, 1), rtol=0, atol=1e-6)
    with pytest.raises(OptionsError, match='--input-size and --image-tile must be multiples of 16'):
        run_recipe('tile', pipe, lr, seeded(), **{**TINY, 'image_tile': 40})


def test_recipes_need_a_known_name_and_a_latent_model(pipe):
    lr = torch.zeros(1, 3, 16, 16)
    with pytest.raises(OptionsError, match=r"--recipe: must be one of \['old', 'tile'\], got 'new'"):
        run_recipe('new', pipe, lr, seeded())
    pixel = copy.copy(pipe)
    pixel.space = PixelResidualSpace(4)
    with pytest.raises(OptionsError, match='PixelResidualSpace: a pixel model samples from its LR'):
        run_recipe('tile', pixel, lr, seeded(), **TINY)


def test_the_latent_canvas_tiles_start_anywhere_the_last_flush_with_the_end(stablesr_nets):
    """sample_canvas: offsets k * (tile - overlap), the last snapped to W - tile (not to the U-Net's divisor)."""
    unet, encoder, _ = stablesr_nets
    condition = TimeAwareCondition(encoder, torch.zeros(1, 4, 8, 13), unet.empty_context)
    canvas = TiledNetwork(lambda x, t, c: x, condition, 8, 13, 1, 8, 4, unet.divisor, weights='stablesr',
                          keep_phase=False)
    assert sorted({(left, w) for _, left, _, w in canvas.boxes}) == [(0, 8), (4, 8), (5, 8)]
    pixel = TiledNetwork(lambda x, t, c: x, condition, 8, 13, 1, 8, 4, unet.divisor)  # SRDiff's: on the divisor
    assert sorted({(left, w) for _, left, _, w in pixel.boxes}) == [(0, 8), (4, 9)]
