"""Latent interpolation and content fusion, against closed forms with a denoiser that knows x0."""
import pytest
import torch
from torch import nn

from basicsr.archs import build_network

from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.inference.manipulation_cli import COMMANDS
from srdiff_basicsr.manipulation import content_fusion, latent_interpolation
from srdiff_basicsr.ops.resize import imresize
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import TINY_ENCODER


class KnowsX0(nn.Module):
    """Predicts the true noise of x_t for a fixed x0: every sampler step then predicts x0 exactly."""
    divisor = 2

    def __init__(self, diffusion):
        super().__init__()
        self.diffusion, self.x0 = diffusion, None

    def project_condition(self, features, lr_up):
        return None

    def forward(self, x_t, t, cond):
        a = self.diffusion.alphas_cumprod[t][:, None, None, None]
        return (x_t - a.sqrt() * self.x0) / (1 - a).sqrt()


@pytest.fixture
def model():
    """A pipeline whose noise predictor knows x0 (10 steps, x4, the paper's DDPM)."""
    schedule = DiscreteSchedule.from_options(timesteps=10)
    return SRDiffPipeline(build_network(dict(TINY_ENCODER, scale=4)), KnowsX0(schedule), schedule, 4, device='cpu')


def near(lr_up, n=2):
    """HR images within the residual range (|hr - lr_up| < 1 / (2 res_rescale)): no clamping."""
    return [(lr_up + (torch.rand_like(lr_up) - 0.5) * 0.4).clamp(0, 1) for _ in range(n)]


@pytest.mark.parametrize('t_bar', [0, 5, 9])  # of 10 steps
def test_interpolation_of_two_images_mixes_them(model, t_bar):
    torch.manual_seed(0)
    lq = torch.rand(1, 3, 4, 4)
    lr_up = imresize(lq, 4)
    hr_a, hr_b = near(lr_up)
    for lam in (0.0, 0.3, 1.0):
        model.unet.x0 = lam * model.space.encode(hr_a, lr_up) + (1 - lam) * model.space.encode(hr_b, lr_up)
        result = latent_interpolation(model, lq, hr_a, hr_b, lam, t_bar, torch.Generator().manual_seed(1))
        assert torch.allclose(result, (lam * hr_a + (1 - lam) * hr_b).clamp(0, 1), atol=1e-4)


def test_fusion_pastes_the_denoised_region_and_keeps_the_rest(model):
    torch.manual_seed(0)
    lq_b = torch.rand(1, 3, 4, 4)
    lr_up = imresize(lq_b, 4)
    hr_b, hr_a = near(lr_up)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:10, 6:12] = 1
    pasted = mask * hr_a + (1 - mask) * hr_b
    model.unet.x0 = model.space.encode(pasted, lr_up)
    result = content_fusion(model, lq_b, hr_b, hr_a, mask, 7, torch.Generator().manual_seed(2))
    assert torch.equal(result[..., mask[0, 0] == 0], hr_b[..., mask[0, 0] == 0])
    assert torch.allclose(result, pasted, atol=1e-4)


def test_manipulations_sample_as_the_model_is_set_to_execute(model, monkeypatch):
    # --precision/--channels-last/--compile of the subcommands reach the network (they were ignored once)
    compiled = []
    monkeypatch.setattr(torch, 'compile', lambda net: compiled.append(net) or net)
    model.set_execution(compile=True)
    lq = torch.rand(1, 3, 4, 4)
    hr_a, hr_b = near(imresize(lq, 4))
    model.unet.x0 = torch.zeros_like(hr_a)
    latent_interpolation(model, lq, hr_a, hr_b, 0.5, 5)
    assert compiled == [model.unet] and model.nfe == 6  # steps 5 .. 0


def test_bad_sizes_and_steps_are_errors(model):
    lq = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match='not scale 4 x the LR'):
        latent_interpolation(model, lq, torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), 0.5)
    with pytest.raises(ValueError, match='t_bar must be from 0 to 9'):
        content_fusion(model, lq, torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16), 10)


def test_subcommands_exist():
    assert set(COMMANDS) == {'interpolate', 'fuse'}
    args = COMMANDS['fuse'][1]().parse_args(['--target', 'b.png', '--source', 'a.png', '--box', '1,2,3,4', '-o',
                                             'x.png', '--model', 'm'])
    assert args.box == '1,2,3,4' and args.t_bar == 50
