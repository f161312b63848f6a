"""Tiled sampling: tiles cover the canvas on the LR grid, fusion is exact for local networks, seams fade."""
import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr.diffusion.tiling import TiledDenoiser, check_tile_options, tile_starts
from srdiff_basicsr.errors import TileError
from tests.conftest import TINY_ENCODER, TINY_UNET


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    encoder = build_network(dict(TINY_ENCODER, scale=4)).eval()
    unet = build_network(dict(TINY_UNET, scale=4, encoder_num_feat=8, encoder_num_block=2, up_input=True)).eval()
    return encoder, unet


def condition_inputs(encoder, lr):
    """(features, lr_up in [-1, 1]) of an LR batch, as the pipeline gives them to the U-Net."""
    from srdiff_basicsr.ops.resize import imresize
    return encoder.features(lr), imresize(lr, 4) * 2 - 1


@pytest.mark.parametrize('length,tile,stride,align', [(100, 32, 24, 4), (64, 64, 48, 8), (40, 64, 32, 8),
                                                      (136, 48, 40, 8)])
def test_tiles_cover_the_canvas_on_the_grid(length, tile, stride, align):
    starts = tile_starts(length, tile, stride, align)
    covered = set()
    for start in starts:
        assert start % align == 0 and start + min(tile, length) <= length
        covered |= set(range(start, start + min(tile, length)))
    assert covered == set(range(length))
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))  # at least tile - stride of overlap


def test_tile_conditions_are_exact_crops_of_the_whole_condition(nets):
    encoder, unet = nets  # with up_input: the condition also holds a 3x3 convolution of lr_up
    with torch.no_grad():
        features, lr_up = condition_inputs(encoder, torch.rand(1, 3, 20, 24))
        whole = unet.project_condition(features, lr_up)
        tiled = TiledDenoiser(unet, unet.project_condition, features, lr_up, 4, tile=32, overlap=8,
                              divisor=unet.divisor)
        for top, left in tiled.boxes:
            assert torch.allclose(tiled.tile_condition(top, left), whole[..., top:top + 32, left:left + 32],
                                  atol=1e-6)


@pytest.mark.parametrize('out_ch', [3, 6])  # 6: a network with two heads (hybrid)
def test_fusion_is_exact_for_a_local_network_and_a_single_tile_is_the_whole_image(nets, out_ch):
    encoder, unet = nets
    torch.manual_seed(1)
    mix = torch.nn.Conv2d(3 + 8, out_ch, 1)  # per pixel: no receptive field to cut at tile borders
    local = lambda x, t, cond: mix(torch.cat([x, cond], 1)) * (1 + t.float()[:, None, None, None])  # noqa: E731
    with torch.no_grad():
        features, lr_up = condition_inputs(encoder, torch.rand(1, 3, 20, 24))
        cond = unet.project_condition(features, lr_up)
        x = torch.randn(2, 3, 80, 96)
        t = torch.tensor([3, 3])
        tiled = TiledDenoiser(local, unet.project_condition, features, lr_up, 4, tile=32, overlap=16, divisor=8,
                              batch=3)
        assert len(tiled.boxes) > 4
        cond = cond.expand(2, -1, -1, -1)
        assert torch.allclose(tiled(x, t), local(x, t, cond), atol=1e-5)
        single = TiledDenoiser(unet, unet.project_condition, features, lr_up, 4, tile=96, overlap=0, divisor=8)
        assert len(single.boxes) == 1 and torch.allclose(single(x, t), unet(x, t, cond), atol=1e-6)


def test_overlapping_gaussian_fusion_hides_the_seams_that_plain_tiles_show(nets):
    encoder, unet = nets
    with torch.no_grad():
        features, lr_up = condition_inputs(encoder, torch.full((1, 3, 32, 32), 0.5))  # a flat image
        x = torch.zeros(1, 3, 128, 128)
        t = torch.tensor([50])
        whole = unet(x, t, unet.project_condition(features, lr_up))
        inner = (..., slice(16, -16), slice(16, -16))  # away from the image border, the flat output is flat
        plain = TiledDenoiser(unet, unet.project_condition, features, lr_up, 4, tile=32, overlap=0, divisor=8)(x, t)
        fused = TiledDenoiser(unet, unet.project_condition, features, lr_up, 4, tile=64, overlap=48, divisor=8)(x, t)
    plain_error = (plain - whole)[inner].abs().max()
    fused_error = (fused - whole)[inner].abs().max()
    assert fused_error < plain_error / 3, (fused_error, plain_error)


def test_tile_options_are_checked():
    check_tile_options(64, 16, 4, 8)
    with pytest.raises(TileError, match='multiple of 8'):
        check_tile_options(60, 16, 4, 8)
    with pytest.raises(TileError, match='overlap'):
        check_tile_options(64, 64, 4, 8)
    with pytest.raises(TileError, match='batch'):
        check_tile_options(64, 16, 4, 8, batch=0)
