import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet

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
    cond = net.project_condition(features)
    assert cond.shape == (1, 8, 12, 12)
    changed = list(features)
    changed[0] = changed[0] + 1  # not among features[2::3]
    assert torch.equal(net.project_condition(changed), cond)
    changed[5] = changed[5] + 1  # features[5] is
    assert not torch.equal(net.project_condition(changed), cond)
    x_t, t = torch.randn(1, 3, 12, 12), torch.tensor([7])
    assert net(x_t, t, cond).shape == (1, 3, 12, 12)
    assert not torch.allclose(net(x_t, t, cond), net(x_t, torch.tensor([70]), cond))
