"""The probability-flow ODE with gradients: the adjoint method against plain back-propagation through the
same solve, for the network's parameters and for a condition computed outside the ODE (the encoder's path);
and the ODE sampler's prior temperature."""
import torch

from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.samplers import probability_flow
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from tests.conftest import sample

SCHEDULE = DiscreteSchedule.from_options('vp', timesteps=30)


class TinyNet(torch.nn.Module):
    """A small eps predictor that uses t and a condition."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, x, t, cond):
        return torch.tanh(self.conv(torch.cat([x, cond], 1))) * (1 + t.view(-1, 1, 1, 1) / 30)


def gradients(adjoint):
    net = TinyNet()
    encoder_weight = torch.tensor(0.7, requires_grad=True)  # stands for the encoder
    lr_features = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    cond = lr_features * encoder_weight
    denoiser = Denoiser(lambda x, t: net(x, t, cond), SCHEDULE, 'eps', clip_x0=False)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    params = [*net.parameters(), cond] if adjoint else None
    x = probability_flow(denoiser, SCHEDULE, x_T, 29, 0, rtol=1e-7, atol=1e-7, adjoint_params=params)
    loss = ((x - 0.3)**2).mean()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters()] + [encoder_weight.grad.clone()]


def test_the_adjoint_gradient_matches_back_propagation_through_the_solver():
    plain_loss, plain = gradients(adjoint=False)
    adjoint_loss, adjoint = gradients(adjoint=True)
    assert adjoint_loss == plain_loss
    assert all(g.abs().sum() > 0 for g in plain)  # every parameter, the encoder's too, gets a gradient
    for a, b in zip(adjoint, plain):  # tolerance: the backward solve's own error at rtol = atol = 1e-7
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (a - b).abs().max()


def test_the_ode_samplers_temperature_scales_the_prior_noise():
    net = TinyNet()
    cond = torch.randn(1, 3, 8, 8)
    network = lambda x, t: net(x, t, cond).detach()  # noqa: E731
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    cooled = sample('ode', network, SCHEDULE, x_T, temperature=0.5)
    assert torch.allclose(cooled, sample('ode', network, SCHEDULE, x_T * 0.5), atol=1e-6)
    assert not torch.allclose(cooled, sample('ode', network, SCHEDULE, x_T), atol=1e-3)
