"""ECDP's continuous VP schedule against its closed form: alpha_bar(s) = exp(-(b_min s + (b_max - b_min) s^2 / 2)),
s = t / t_max, discretised in N steps at t = (k + 1) t_max / N; and every sampler recovers x0 with it."""
import math

import pytest
import torch

from srdiff_basicsr.diffusion.schedule import DiscreteSchedule, VPSchedule
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.network_options import diffusion_options, schedule_options
from tests.conftest import sample

SCHEDULE = DiscreteSchedule.from_options('vp')  # ECDP's: 300 steps, beta 0.1 to 20, t_max 300


def alpha_bar(t_continuous):
    """The closed form at continuous times (float64), written out here."""
    s = t_continuous.double() / 300
    return torch.exp(-(0.1 * s + 19.9 * s**2 / 2))


def test_the_discretisation_is_the_closed_form_at_t_equal_step_plus_one():
    assert isinstance(SCHEDULE, VPSchedule) and SCHEDULE.num_timesteps == 300
    t = torch.arange(1, 301)
    assert torch.allclose(SCHEDULE.alphas_cumprod.double(), alpha_bar(t), rtol=1e-6)
    expected_betas = 1 - alpha_bar(t) / alpha_bar(t - 1)
    assert torch.allclose(SCHEDULE.betas.double(), expected_betas, rtol=1e-5)
    assert SCHEDULE.alphas_cumprod[-1] < 5e-5  # alpha_bar(1) = exp(-10.05)
    assert torch.equal(SCHEDULE.network_time(torch.arange(300)), torch.arange(1, 301).float())


def test_real_steps_use_the_closed_form_and_its_inverse():
    steps = torch.tensor([-1.0, -0.9, 0.0, 3.7, 150.25, 299.0], dtype=torch.float64)
    sigma_bar = SCHEDULE.sigma_bar(steps)
    expected = ((1 - alpha_bar(steps + 1)) / alpha_bar(steps + 1)).sqrt()
    assert torch.allclose(sigma_bar, expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(SCHEDULE.timestep(sigma_bar[1:]), steps[1:], atol=1e-8)
    sqrt_ab, sqrt_1m_ab, _, _ = SCHEDULE.coefficients(steps, torch.zeros(6, 1, 1, 1))
    assert torch.allclose(sqrt_ab.flatten().double(), alpha_bar(steps + 1).sqrt(), atol=1e-7)
    assert sqrt_1m_ab.flatten()[0] == 0  # t = 0: no noise


def test_training_draws_continuous_times_uniformly_over_0_to_t_max():
    torch.manual_seed(0)
    steps = SCHEDULE.training_steps(20000, 'cpu')
    times = SCHEDULE.network_time(steps)
    assert steps.is_floating_point() and times.min() >= 0 and times.max() <= 300
    assert times.mean().item() == pytest.approx(150, abs=3) and times.std().item() == pytest.approx(
        300 / math.sqrt(12), abs=3)


def true_alpha_bar_at_steps(t):
    return alpha_bar(t.double() + 1)[:, None, None, None]


def oracle(x0):
    def predict(x_t, t):
        a = true_alpha_bar_at_steps(t)
        return ((x_t.double() - a.sqrt() * x0.double()) / (1 - a).sqrt()).float()
    return predict


@pytest.mark.parametrize('sampler,options', [('ddpm', {}), ('ddim', dict(steps=10)), ('dpmpp_2m', dict(steps=10)),
                                             ('ode', dict(rtol=1e-4, atol=1e-4))])
def test_an_oracle_recovers_x0_with_every_sampler_on_the_vp_schedule(sampler, options):
    x0 = torch.rand(2, 3, 8, 8) * 1.8 - 0.9
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    result = sample(sampler, oracle(x0), SCHEDULE, x_T, generator=torch.Generator().manual_seed(2), **options)
    assert (result - x0).abs().max() < 2e-4


def test_the_diffusion_section_takes_each_schedules_own_options_and_defaults():
    vp = diffusion_options({'schedule': 'vp', 'res_rescale': 5.0})
    assert schedule_options(vp) == {'schedule': 'vp', 'timesteps': 300, 'beta_min': 0.1, 'beta_max': 20.0,
                                    't_max': 300.0}
    assert diffusion_options(None)['timesteps'] == 100 and 'beta_min' not in diffusion_options(None)
    with pytest.raises(OptionsError,
                       match=r"diffusion: unknown option\(s\) \['cosine_s'\] for space pixel_residual and schedule vp"):
        diffusion_options({'schedule': 'vp', 'cosine_s': 0.008})
    with pytest.raises(OptionsError, match='diffusion.beta_max: must be a number > 0, got -1'):
        diffusion_options({'schedule': 'vp', 'beta_max': -1})
