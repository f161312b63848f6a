"""Tiled sampling: tiles cover the canvas on the LR grid, fusion is exact for local networks, seams fade."""
import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr.diffusion.condition import ProjectedCondition
from srdiff_basicsr.diffusion.tiling import TiledNetwork, check_tile_options, tile_cores, tile_spans
from srdiff_basicsr.errors import TileError
from tests.conftest import TINY_ENCODER, TINY_UNET


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    encoder = build_network(dict(TINY_ENCODER, scale=4)).eval()
    unet = build_network(dict(TINY_UNET, scale=4, encoder_num_feat=8, encoder_num_block=2, up_input=True)).eval()
    return encoder, unet


def condition_of(encoder, unet, lr):
    """The condition of an LR batch, as the pipeline makes it (x4)."""
    from srdiff_basicsr.ops.resize import imresize
    return ProjectedCondition(unet, encoder.features(lr), imresize(lr, 4), 4)


@pytest.mark.parametrize('length,tile,stride,align', [(100, 32, 24, 4), (64, 64, 48, 8), (40, 64, 32, 8),
                                                      (136, 48, 40, 8), (136, 48, 40, 16), (128, 64, 40, 16)])
def test_tiles_cover_the_canvas_on_the_grid_and_their_cores_partition_it(length, tile, stride, align):
    spans = tile_spans(length, tile, stride, align)
    covered = []
    for start, size in spans:
        assert start % align == 0 and start + size <= length and min(tile, length) <= size < tile + align
        covered += range(start, start + size)
    assert set(covered) == set(range(length))
    assert all(b - a <= stride for (a, _), (b, _) in zip(spans, spans[1:]))  # at least tile - stride of overlap
    cores = [start + i for (start, _), (begin, end) in zip(spans, tile_cores(spans, 4)) for i in range(begin, end)]
    assert cores == list(range(length))  # each pixel in exactly one core
    assert all(begin % 4 == 0 and end % 4 == 0 for begin, end in tile_cores(spans, 4))


def test_tile_conditions_are_exact_crops_of_the_whole_condition(nets):
    encoder, unet = nets  # with up_input: the condition also holds a 3x3 convolution of lr_up
    with torch.no_grad():
        condition = condition_of(encoder, unet, torch.rand(1, 3, 20, 24))
        whole = condition.at(None)
        tiled = TiledNetwork(unet, condition, 80, 96, 4, tile=32, overlap=8, divisor=unet.divisor)
        for top, left, h, w in tiled.boxes:
            assert torch.allclose(condition.at(None, (top, left, h, w)), whole[..., top:top + h, left:left + w],
                                  atol=1e-6)


@pytest.mark.parametrize('out_ch', [3, 6])  # 6: a network with two heads (hybrid)
def test_fusion_is_exact_for_a_local_network_and_a_single_tile_is_the_whole_image(nets, out_ch):
    encoder, unet = nets
    torch.manual_seed(1)
    mix = torch.nn.Conv2d(3 + 8, out_ch, 1)  # per pixel: no receptive field to cut at tile borders
    local = lambda x, t, cond: mix(torch.cat([x, cond], 1)) * (1 + t.float()[:, None, None, None])  # noqa: E731
    with torch.no_grad():
        condition = condition_of(encoder, unet, torch.rand(1, 3, 20, 24))
        cond = condition.at(None)
        x = torch.randn(2, 3, 80, 96)
        t = torch.tensor([3, 3])
        tiled = TiledNetwork(local, condition, 80, 96, 4, tile=32, overlap=16, divisor=8, batch=3)
        assert len(tiled.boxes) > 4
        cond = cond.expand(2, -1, -1, -1)
        assert torch.allclose(tiled(x, t), local(x, t, cond), atol=1e-5)
        single = TiledNetwork(unet, condition, 80, 96, 4, tile=96, overlap=0, divisor=8)
        assert len(single.boxes) == 1 and torch.allclose(single(x, t), unet(x, t, cond), atol=1e-6)


def test_overlapping_gaussian_fusion_hides_the_seams_that_plain_tiles_show(nets):
    encoder, unet = nets
    with torch.no_grad():
        condition = condition_of(encoder, unet, torch.full((1, 3, 32, 32), 0.5))  # a flat image
        x = torch.zeros(1, 3, 128, 128)
        t = torch.tensor([50])
        whole = unet(x, t, condition.at(None))
        inner = (..., slice(16, -16), slice(16, -16))  # away from the image border, the flat output is flat
        plain = TiledNetwork(unet, condition, 128, 128, 4, tile=32, overlap=0, divisor=8)(x, t)
        fused = TiledNetwork(unet, condition, 128, 128, 4, tile=64, overlap=48, divisor=8)(x, t)
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


def non_local_net(kind):
    """A network that is pixel-wise but for one non-local op: GroupNorm, the official linear attention, or
    window attention (8x8 windows): tiles are exact only with the whole image's statistics or window grid."""
    from srdiff_basicsr.archs.image_statistics import ImageGroupNorm
    from srdiff_basicsr.archs.srdiff_unet_arch import MidAttention, WindowAttention
    torch.manual_seed(2)
    op = {'group_norm': ImageGroupNorm(2, 8), 'linear_attention': MidAttention(8, heads=2, dim_head=4),
          'window_attention': WindowAttention(8, heads=2, window=8)}[kind]
    for param in op.parameters():  # a trained op (the attentions start as the identity)
        torch.nn.init.normal_(param, std=0.5)
    mix_in, mix_out = torch.nn.Conv2d(3 + 8, 8, 1), torch.nn.Conv2d(8, 3, 1)
    return lambda x, t, cond: mix_out(op(mix_in(torch.cat([x, cond], 1)) * 3 + 1)), kind == 'window_attention'


@pytest.mark.parametrize('kind', ['group_norm', 'linear_attention', 'window_attention'])
def test_non_local_ops_see_the_whole_image_in_tiles(nets, kind):
    encoder, unet = nets
    net, windowed = non_local_net(kind)
    with torch.no_grad():
        condition = condition_of(encoder, unet, torch.rand(1, 3, 32, 36))
        x, t = torch.randn(2, 3, 128, 144), torch.tensor([7, 7])
        whole = net(x, t, condition.at(None).expand(2, -1, -1, -1))
        exact = dict(grid=8) if windowed else dict(image_statistics=True)
        tiled = TiledNetwork(net, condition, 128, 144, 4, tile=48, overlap=20, divisor=4, **exact)
        assert len(tiled.boxes) >= 9 and len(tiled.batches) == (len(tiled.boxes) if windowed else 1)
        assert (tiled(x, t) - whole).abs().max() < 1e-4
        per_tile = TiledNetwork(net, condition, 128, 144, 4, tile=48, overlap=20, divisor=4)
        assert (per_tile(x, t) - whole).abs().max() > 1e-2  # what the tiles gave before


TILE_ARCHS = {
    'srdiff': dict(type='SRDiffUNet', dim=8, dim_mults=[1, 2]),
    'srdiff_use_attn': dict(type='SRDiffUNet', dim=8, dim_mults=[1, 2], use_attn=True),
    'sradm': dict(type='SRDiffUNet', dim=8, dim_mults=[1, 2], window_attn_levels=[0, 1], window_attn_mid=True,
                  window_size=8, window_heads=2),
    'ecdp': dict(type='ECDPUNet', channels=[8, 16], num_blocks=1, time_dim=16, feature_blocks=[0, 1], num_out_ch=6),
}


@pytest.mark.parametrize('arch', sorted(TILE_ARCHS))
def test_every_arch_denoises_a_canvas_of_tiles_as_the_whole_image(nets, arch):
    """One step of each arch (its attention switched on) on 3x3 tiles of a photograph's canvas against the whole
    canvas; without the whole image's statistics and window grid, the non-local archs differ 5 times more."""
    from srdiff_basicsr.archs.image_statistics import needs_image_statistics
    from tests.conftest import photo_crops
    encoder, _ = nets
    torch.manual_seed(1)
    unet = build_network(dict(TILE_ARCHS[arch], scale=4, encoder_num_feat=8, encoder_num_block=2)).eval()
    with torch.no_grad():
        for module in unet.modules():  # attention as trained, not the identity it starts as
            if hasattr(module, 'gate'):
                module.gate.fill_(1.0)
            if type(module).__name__ == 'WindowAttention':
                torch.nn.init.normal_(module.to_out.weight, std=0.3)
        lr = torch.from_numpy(photo_crops(1, 32)[0]).permute(2, 0, 1)[None].float() / 255
        condition = condition_of(encoder, unet, lr)
        x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
        exact = dict(grid=unet.window_grid, image_statistics=needs_image_statistics(unet))
        for step in (10, 60):
            t = torch.tensor([step])
            whole = unet(x, t, condition.at(None))
            tiled = TiledNetwork(unet, condition, 128, 128, 4, tile=64, overlap=32, divisor=unet.divisor, **exact)
            assert len(tiled.boxes) == 9
            error = (tiled(x, t) - whole).abs().max()
            # what is left: the zero padding at a tile's borders, faded by the weights (and, through the windows
            # near a border, a little further for SRADM)
            assert error < (5e-3 if arch == 'sradm' else 1e-3) * whole.abs().max(), (error, whole.abs().max())
            if arch != 'srdiff':
                per_tile = TiledNetwork(unet, condition, 128, 128, 4, tile=64, overlap=24, divisor=unet.divisor)
                assert (per_tile(x, t) - whole).abs().max() > 5 * error
