import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from torch.nn import functional as F

from srdiff_basicsr.archs import SRDiffRRDBNet, SRDiffUNet


def test_x4_encoder_loads_basicsr_rrdbnet_weights_and_gives_the_same_image():
    torch.manual_seed(0)
    basicsr_net = RRDBNet(3, 3, scale=4, num_feat=16, num_block=3, num_grow_ch=8).eval()
    ours = SRDiffRRDBNet(scale=4, num_feat=16, num_block=3, num_grow_ch=8).eval()
    ours.load_state_dict(basicsr_net.state_dict(), strict=True)
    lr = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        assert torch.allclose(ours(lr), basicsr_net(lr).clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize('scale', [2, 4, 8])
def test_encoder_output_and_features_shapes(scale):
    net = SRDiffRRDBNet(scale=scale, num_feat=8, num_block=5, num_grow_ch=4)
    lr = torch.rand(1, 3, 5, 7)
    sr = net(lr)
    assert sr.shape == (1, 3, 5 * scale, 7 * scale) and sr.min() >= 0 and sr.max() <= 1
    features = net.features(lr)
    assert len(features) == 6 and all(f.shape == (1, 8, 5, 7) for f in features)


def test_encoder_rejects_scales_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match='power of two'):
        SRDiffRRDBNet(scale=3)


def test_unet_condition_comes_from_every_third_feature_and_is_added_at_full_resolution():
    torch.manual_seed(0)
    net = SRDiffUNet(dim=8, dim_mults=(1, 2), scale=4, encoder_num_feat=4, encoder_num_block=5).eval()
    features = [torch.randn(1, 4, 3, 3) for _ in range(6)]
    lr_up = torch.randn(1, 3, 12, 12)
    cond = net.project_condition(features, lr_up)
    assert cond.shape == (1, 8, 12, 12)
    changed = list(features)
    changed[0] = changed[0] + 1  # not among features[2::3]
    assert torch.equal(net.project_condition(changed, lr_up), cond)
    assert torch.equal(net.project_condition(features, lr_up + 1), cond)  # lr_up only with up_input
    changed[5] = changed[5] + 1  # features[5] is
    assert not torch.equal(net.project_condition(changed, lr_up), cond)
    x_t, t = torch.randn(1, 3, 12, 12), torch.tensor([7])
    assert net(x_t, t, cond).shape == (1, 3, 12, 12)
    assert not torch.allclose(net(x_t, t, cond), net(x_t, torch.tensor([70]), cond))


def unet_pair(**options):
    """A U-Net with the given official options and the same network without them, sharing all other weights."""
    torch.manual_seed(0)
    kwargs = dict(dim=8, dim_mults=(1, 2), scale=4, encoder_num_feat=4, encoder_num_block=2)
    net, plain = SRDiffUNet(**kwargs, **options).eval(), SRDiffUNet(**kwargs).eval()
    plain.load_state_dict(net.state_dict(), strict=False)
    return net, plain


def test_mid_attention_with_its_rezero_gate_at_0_is_the_network_without_attention():
    net, plain = unet_pair(use_attn=True)
    assert net.mid_attn.gate.item() == 0  # a new network starts so
    x_t, t, cond = torch.randn(2, 3, 8, 8), torch.tensor([3, 50]), torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x_t, t, cond), plain(x_t, t, cond))
        net.mid_attn.gate.fill_(0.5)
        assert not torch.allclose(net(x_t, t, cond), plain(x_t, t, cond))


def test_mid_attention_is_linear_attention_computed_head_by_head():
    from srdiff_basicsr.archs.srdiff_unet_arch import MidAttention
    torch.manual_seed(0)
    attention = MidAttention(dim=16)
    torch.nn.init.normal_(attention.gate)
    x = torch.randn(2, 16, 5, 6)
    qkv = torch.nn.functional.conv2d(x, attention.to_qkv.weight).flatten(2)  # (b, 3 * 4 heads * 32, pixels)
    heads = []
    for head in range(4):
        q, k, v = (qkv[:, (part * 4 + head) * 32:(part * 4 + head + 1) * 32] for part in range(3))
        k = k.exp() / k.exp().sum(dim=2, keepdim=True)  # softmax over the pixels
        context = k @ v.transpose(1, 2)  # (b, 32, 32): sum over pixels of k_d v_e
        heads.append(context.transpose(1, 2) @ q)
    out = torch.nn.functional.conv2d(torch.cat(heads, 1).view(2, 128, 5, 6), attention.to_out.weight,
                                     attention.to_out.bias)
    with torch.no_grad():
        assert torch.allclose(attention(x), x + attention.gate * out, atol=1e-5)


def test_up_input_adds_a_reflection_padded_convolution_of_lr_up_to_the_condition():
    net, plain = unet_pair(up_input=True)
    features = [torch.randn(1, 4, 3, 3) for _ in range(3)]
    lr_up = torch.rand(1, 3, 12, 12) * 2 - 1
    conv = net.up_proj[1]
    expected = plain.project_condition(features, lr_up) + torch.nn.functional.conv2d(
        torch.nn.functional.pad(lr_up, (1, 1, 1, 1), mode='reflect'), conv.weight, conv.bias)
    with torch.no_grad():
        assert torch.allclose(net.project_condition(features, lr_up), expected, atol=1e-6)


def test_folded_weight_norm_gives_the_weight_normed_layers_output():
    from torch import nn

    from srdiff_basicsr.conversion.srdiff import fold_weight_norm
    torch.manual_seed(0)
    for layer, x in ((nn.Conv2d(6, 5, 3), torch.randn(2, 6, 7, 7)), (nn.Conv1d(4, 3, 1), torch.randn(2, 4, 9))):
        with pytest.warns(FutureWarning):  # the official use_wn's API (keys weight_g, weight_v), deprecated
            normed = nn.Sequential(nn.utils.weight_norm(layer))
        plain = nn.Sequential(type(layer)(layer.in_channels, layer.out_channels, layer.kernel_size))
        with torch.no_grad():
            normed[0].weight_g.mul_(torch.rand_like(normed[0].weight_g) + 0.5)
            assert {'0.weight_g', '0.weight_v'} <= set(normed.state_dict())
            plain.load_state_dict(fold_weight_norm(normed.state_dict()))
            assert torch.allclose(plain(x), normed(x), atol=1e-6)


def attention_over(x, attention, top, left, height, width):
    """Multi-head self-attention of ``attention``'s projections among the pixels of one region, written out
    (each pixel's channels standardised and scaled by the norm's weight and bias; softmax(q k^T / sqrt(d)) v per
    head), for the region's output pixels."""
    c, heads = x.shape[1], attention.heads
    region = x[..., top:top + height, left:left + width]
    mean, var = region.mean(1, keepdim=True), region.var(1, unbiased=False, keepdim=True)
    normed = ((region - mean) / (var + attention.norm.eps).sqrt() * attention.norm.weight[:, None, None]
              + attention.norm.bias[:, None, None])
    q, k, v = torch.nn.functional.conv2d(normed, attention.to_qkv.weight).flatten(2).chunk(3, dim=1)
    d = c // heads
    outs = []
    for head in range(heads):
        qh, kh, vh = (t[:, head * d:(head + 1) * d].transpose(1, 2) for t in (q, k, v))  # (b, pixels, d)
        weights = torch.softmax(qh @ kh.transpose(1, 2) / d ** 0.5, dim=-1)
        outs.append((weights @ vh).transpose(1, 2))
    z = torch.cat(outs, 1).view(x.shape[0], c, height, width)
    return region + torch.nn.functional.conv2d(z, attention.to_out.weight, attention.to_out.bias)


@pytest.mark.parametrize('height,width,window', [(6, 6, 8), (5, 7, 8), (8, 8, 4), (5, 7, 4)])
def test_window_attention_is_full_attention_within_each_window_of_real_pixels(height, width, window):
    from srdiff_basicsr.archs.srdiff_unet_arch import WindowAttention
    torch.manual_seed(0)
    attention = WindowAttention(16, heads=2, window=window)
    torch.nn.init.normal_(attention.to_out.weight, std=0.2)  # it starts at zero: the identity
    torch.nn.init.normal_(attention.norm.weight, 1.0, 0.3)
    torch.nn.init.normal_(attention.norm.bias, std=0.3)
    x = torch.randn(2, 16, height, width)
    with torch.no_grad():
        out = attention(x)
        for top in range(0, height, window):  # windows from the origin; the last ones cut by the image border
            for left in range(0, width, window):
                h, w = min(window, height - top), min(window, width - left)
                expected = attention_over(x, attention, top, left, h, w)
                assert torch.allclose(out[..., top:top + h, left:left + w], expected, atol=1e-5), (top, left)


def test_a_new_unet_with_window_attention_is_the_unet_without_it():
    net, plain = unet_pair(window_attn_levels=[0, 1], window_attn_mid=True, window_size=4, window_heads=2)
    assert sorted(net.down_window_attns) == ['0', '1'] and sorted(net.up_window_attns) == ['1']
    x_t, t, cond = torch.randn(1, 3, 10, 14), torch.tensor([3]), torch.randn(1, 8, 10, 14)
    with torch.no_grad():
        assert torch.equal(net(x_t, t, cond), plain(x_t, t, cond))
        for attention in (*net.down_window_attns.values(), *net.up_window_attns.values(), net.mid_window_attn):
            torch.nn.init.normal_(attention.to_out.weight, std=0.1)
        assert not torch.allclose(net(x_t, t, cond), plain(x_t, t, cond))


def test_an_ecdp_resblock_is_its_formula_written_out():
    from srdiff_basicsr.archs.ecdp_unet_arch import ECDPResBlock
    torch.manual_seed(0)
    block = ECDPResBlock(8, 16, time_dim=12, cond_dim=5)
    for p in block.parameters():  # away from the small initialisation, so every term counts
        torch.nn.init.normal_(p, std=0.3)
    x, t_emb, cond = torch.randn(2, 8, 6, 7), torch.randn(2, 12), torch.randn(2, 5, 6, 7)
    g = {name: p for name, p in block.named_parameters()}
    h = F.conv2d(F.silu(F.group_norm(x, 2, g['norm1.weight'], g['norm1.bias'])), g['conv1.weight'], g['conv1.bias'],
                 padding=1)
    h = h + (t_emb @ g['time_in.weight'].T + g['time_in.bias'])[:, :, None, None]
    h = h + F.conv2d(cond, g['cond_in.weight'], g['cond_in.bias'])
    out = F.conv2d(F.silu(F.group_norm(h, 4, g['norm2.weight'], g['norm2.bias'])), g['conv2.weight'], g['conv2.bias'],
                   padding=1) + F.conv2d(x, g['skip.weight'], g['skip.bias'])
    assert torch.allclose(block(x, t_emb, cond), out, atol=1e-5)


def test_ecdp_unet_wiring_sizes_and_small_start():
    from srdiff_basicsr.archs.ecdp_unet_arch import ECDPResBlock, ECDPUNet
    net = ECDPUNet(channels=[8, 16, 16], num_blocks=2, time_dim=8, scale=2, encoder_num_feat=4, encoder_num_block=3,
                   feature_blocks=[0, 2])
    blocks = [m for m in net.ups if isinstance(m, ECDPResBlock)]
    assert len(blocks) == 3 * 3 and net.divisor == 4  # num_blocks + 1 per level on the way up
    features = [torch.randn(1, 4, 6, 4) * (i + 1) for i in range(4)]
    cond = net.project_condition(features, None)
    expected = F.interpolate(torch.cat([features[0], features[2]], 1), size=(12, 8), mode='bilinear')
    assert cond.shape == (1, 8, 12, 8) and torch.allclose(cond, expected)
    out = net(torch.randn(1, 3, 12, 8), torch.tensor([17.5]), cond)
    assert out.shape == (1, 6, 12, 8)
    default = torch.nn.Conv2d(16, 16, 3)  # the last conv of each block starts at 1e-3 of the default scale
    assert blocks[0].conv2.weight.abs().max() <= 1e-3 * default.weight.abs().max() * 1.01
    with pytest.raises(ValueError, match=r'feature_blocks must be 1 or more of the blocks 0..2 of the encoder'):
        ECDPUNet(encoder_num_block=3, feature_blocks=[1, 3])


def test_our_rrdb_block_is_basicsrs_same_names_same_seeded_start_same_output():
    from basicsr.archs.rrdbnet_arch import RRDB as BasicSRRRDB

    from srdiff_basicsr.archs.rrdb_blocks import RRDB
    torch.manual_seed(3)
    reference = BasicSRRRDB(16, 8)
    torch.manual_seed(3)
    ours = RRDB(16, 8)
    theirs = reference.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    assert all(torch.equal(value, theirs[key]) for key, value in ours.state_dict().items())
    x = torch.randn(2, 16, 7, 5)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_the_unets_mish_is_x_tanh_softplus_x_in_value_and_gradient():
    from srdiff_basicsr.archs.srdiff_unet_arch import Mish
    x = torch.linspace(-25, 25, 2001, dtype=torch.float64, requires_grad=True)
    closed_form = x * torch.tanh(torch.log1p(torch.exp(x)))  # softplus written out; mish'(x) by autograd of it
    ours = Mish()(x)
    assert torch.allclose(ours, closed_form, rtol=1e-12, atol=1e-12)
    assert torch.allclose(ours, F.mish(x), rtol=1e-12, atol=1e-12)  # torch's one-kernel mish
    grad_ours, = torch.autograd.grad(ours.sum(), x)
    grad_closed, = torch.autograd.grad(closed_form.sum(), x)
    assert torch.allclose(grad_ours, grad_closed, rtol=1e-10, atol=1e-12)
