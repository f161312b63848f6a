"""The sampler table against closed forms: DDIM(eta=1, all steps) is DDPM, an exact denoiser recovers x0
with every sampler and every parametrization, the table drives options, plans and descriptions."""
import pytest
import torch

from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS, Denoiser
from srdiff_basicsr.diffusion.samplers import (SAMPLERS, describe_sampler, expected_nfe, make_plan,
                                               sampler_options)
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.errors import OptionsError
from tests.conftest import sample

SCHEDULE = DiscreteSchedule.from_options(timesteps=100)


def some_denoiser():
    """A fixed nonlinear function of (x_t, t), standing in for a trained network."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    return lambda x, t: torch.tanh(conv(x)) + 0.01 * t.float()[:, None, None, None].sin()


def true_alpha_bar(t):
    """alpha_bar at real t, by the schedule's own log(sigma_bar) interpolation (float64)."""
    sigma_bar = SCHEDULE.sigma_bar(t.double())[:, None, None, None]
    return 1 / (1 + sigma_bar**2)


def oracle(x0, parametrization='eps'):
    """The network that predicts, in ``parametrization``, the truth of x_t = sqrt(a) x0 + sqrt(1 - a) eps,
    at any real t (computed here in float64 from the definitions, not by the code under test)."""
    def predict(x_t, t):
        a = true_alpha_bar(t)
        x_t64, x064 = x_t.double(), x0.double()
        eps = (x_t64 - a.sqrt() * x064) / (1 - a).sqrt()
        return {'eps': eps, 'x0': x064, 'v': a.sqrt() * eps - (1 - a).sqrt() * x064,
                'hybrid': torch.cat([eps, x064], dim=1)}[parametrization].float()
    return predict


def test_plans_are_built_outside_the_samplers_and_start_anywhere():
    assert make_plan({'type': 'ddpm'}, 100, start_step=5).tolist() == [5, 4, 3, 2, 1, 0]
    plan = make_plan({'type': 'ddim', 'steps': 3, 'eta': 0.0}, 100, start_step=49)
    assert plan.tolist() == [49, 32, 16]
    assert make_plan({'type': 'ode', 'rtol': 1e-3, 'atol': 1e-3, 'method': 'dopri5'}, 100).tolist() == [99.0, 0.0]


def test_ddim_with_eta_1_and_all_steps_is_ddpm_step_for_step():
    network = some_denoiser()
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(2, 3, 8, 8, generator=generator)
    noises = [torch.randn(2, 3, 8, 8, generator=generator) for _ in range(100)]
    ddpm = sample('ddpm', network, SCHEDULE, x_T, noises=noises)
    ddim = sample('ddim', network, SCHEDULE, x_T, noises=noises, steps=100, eta=1.0)
    assert (ddpm - ddim).abs().max() < 1e-4
    deterministic = sample('ddim', network, SCHEDULE, x_T, steps=100, eta=0.0)
    assert (ddpm - deterministic).abs().max() > 1e-2  # eta matters


CASES = [('ddpm', {}), ('ddim', dict(steps=5)), ('ddim', dict(steps=17)), ('dpmpp_2m', dict(steps=5)),
         ('dpmpp_2m', dict(steps=12)), ('ode', dict(rtol=1e-4, atol=1e-4))]


@pytest.mark.parametrize('parametrization', sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize('sampler,options', CASES)
def test_an_oracle_recovers_x0_with_every_sampler_and_parametrization(sampler, options, parametrization):
    x0 = torch.rand(2, 3, 8, 8) * 1.8 - 0.9
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    result = sample(sampler, oracle(x0, parametrization), SCHEDULE, x_T, generator=torch.Generator().manual_seed(2),
                    parametrization=parametrization, **options)
    assert (result - x0).abs().max() < 2e-4


@pytest.mark.parametrize('parametrization', sorted(PARAMETRIZATIONS))
def test_each_parametrization_target_is_what_its_split_inverts(parametrization):
    torch.manual_seed(0)
    x0, eps = torch.rand(3, 3, 4, 4) * 2 - 1, torch.randn(3, 3, 4, 4)
    t = torch.tensor([0, 40, 99])
    x_t = SCHEDULE.q_sample(x0, t, eps)
    entry = PARAMETRIZATIONS[parametrization]
    x0_back, eps_back = entry.split(entry.target(x0, eps, t, SCHEDULE), x_t, t, SCHEDULE)
    assert torch.allclose(x0_back, x0, atol=2e-3) and torch.allclose(eps_back, eps, atol=2e-3)
    assert torch.allclose(entry.target(x0, eps, t, SCHEDULE).double(),
                          oracle(x0, parametrization)(x_t, t.double()).double(), atol=2e-3)


def test_clamping_denoiser_gives_the_eps_of_the_clamped_x0():
    x_t, t = torch.randn(1, 3, 4, 4) * 3, torch.tensor([50])
    x0, eps = Denoiser(lambda x, t: torch.full_like(x, -3.0), SCHEDULE)(x_t, t)
    assert x0.abs().max() <= 1
    assert torch.allclose(SCHEDULE.q_sample(x0, t, eps), x_t, atol=1e-5)


def test_schedule_answers_at_real_steps():
    t = torch.tensor([0.0, 0.5, 13.0, 42.7, 99.0], dtype=torch.float64)
    assert torch.allclose(SCHEDULE.timestep(SCHEDULE.sigma_bar(t)), t, atol=1e-9)
    integer = torch.arange(100)
    assert torch.allclose(SCHEDULE.sigma_bar(integer.double()).float(), SCHEDULE.sqrt_recipm1_alphas_cumprod,
                          rtol=1e-6)
    x0, eps = torch.rand(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    at_integer = SCHEDULE.q_sample(x0, torch.tensor([3, 70]), eps)
    at_real = SCHEDULE.q_sample(x0, torch.tensor([3.0, 70.0]), eps)
    assert torch.allclose(at_integer, at_real, atol=1e-5)


def test_ode_tolerance_trades_evaluations_for_accuracy():
    x0, wrong = torch.rand(1, 3, 8, 8) * 1.6 - 0.8, some_denoiser()
    network = lambda x, t: oracle(x0)(x, t) + 0.1 * wrong(x, t)  # noqa: E731  (a good but imperfect network)
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    counts = {}
    results = {}
    for tol in (1e-2, 1e-5):
        calls = []
        results[tol] = sample('ode', lambda x, t: calls.append(1) or network(x, t), SCHEDULE, x_T, rtol=tol, atol=tol)
        counts[tol] = len(calls)
    assert counts[1e-2] < counts[1e-5]
    assert (results[1e-2] - results[1e-5]).abs().mean() < 0.02


def test_samplers_are_chosen_by_options_and_seeded():
    network = some_denoiser()
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    calls = []
    sample('dpmpp_2m', lambda x, t: calls.append(1) or network(x, t), SCHEDULE, x_T, steps=9)
    assert len(calls) == 9 == expected_nfe(sampler_options({'type': 'dpmpp_2m', 'steps': 9}, 100), 100)
    first = sample('ddim', network, SCHEDULE, x_T, generator=torch.Generator().manual_seed(4), steps=10, eta=0.5)
    again = sample('ddim', network, SCHEDULE, x_T, generator=torch.Generator().manual_seed(4), steps=10, eta=0.5)
    assert torch.equal(first, again)
    other = sample('ddim', network, SCHEDULE, x_T, generator=torch.Generator().manual_seed(5), steps=10, eta=0.5)
    assert not torch.equal(first, other)


def test_the_table_fills_defaults_checks_options_and_describes():
    assert sampler_options(None, 100) == {'type': 'ddpm', 'variance': 'posterior', 'end_step': 0}
    assert sampler_options({'type': 'ddim'}, 100) == {'type': 'ddim', 'steps': 20, 'eta': 0.0, 'spacing': 'trailing'}
    assert describe_sampler(sampler_options({'type': 'ddim', 'steps': 10}, 100), 100) == 'DDIM, 10 steps, eta 0.0'
    assert describe_sampler({'type': 'ddpm'}, 100) == 'DDPM, 100 steps'
    assert describe_sampler({'type': 'ddpm', 'variance': 'beta', 'end_step': 5}, 300) == \
        'DDPM, 295 steps, variance beta_t, ending at step 5'
    assert expected_nfe(sampler_options({'type': 'ode'}, 100), 100) is None
    for bad, message in [({'type': 'euler'}, 'val.sampler.type: unknown sampler'),
                         ({'type': 'ddim', 'steps': 101}, r'val.sampler.steps: must be an integer from 1 to 100'),
                         ({'type': 'ddim', 'steps': 2.5}, 'val.sampler.steps'),
                         ({'type': 'ddim', 'eta': -1}, r'val.sampler.eta: must be a number >= 0'),
                         ({'type': 'ode', 'rtol': 0}, 'val.sampler.rtol: must be a number > 0'),
                         ({'type': 'ode', 'method': 'euler'}, 'val.sampler.method: must be one of'),
                         ({'type': 'dpmpp_2m', 'eta': 0.5}, r"unknown option\(s\) \['eta'\] for dpmpp_2m")]:
        with pytest.raises(OptionsError, match=message):
            sampler_options(bad, 100)
    assert set(SAMPLERS) == {'ddpm', 'ddpm_spaced', 'ddim', 'dpmpp_2m', 'ode', 'ode_vp'}


def test_the_hybrid_combination_is_the_eps_head_at_low_noise_and_the_x0_heads_eps_at_high_noise():
    from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS as TABLE
    from srdiff_basicsr.diffusion.schedule import VPSchedule
    torch.manual_seed(0)
    x_t, eps_hat, x0_hat = torch.randn(3, 2, 3, 4, 4, dtype=torch.float64).unbind(0)
    output = torch.cat([eps_hat, x0_hat], dim=1)
    vp = VPSchedule()
    for step, schedule in ((0, SCHEDULE), (0, vp), (99, SCHEDULE), (299, vp)):
        t = torch.full((2, ), step)
        a = schedule.alphas_cumprod[step].double()
        x0, eps = TABLE['hybrid'].split(output, x_t, t, schedule)
        eps, x0 = eps.double(), x0.double()
        implied = (x_t - a.sqrt() * x0_hat) / (1 - a).sqrt()  # the eps the x0 head implies
        assert torch.allclose(eps, a * eps_hat + (1 - a) * implied, atol=1e-5)
        assert torch.allclose(x0, (x_t - (1 - a).sqrt() * eps) / a.sqrt(), rtol=1e-4, atol=1e-4)
        if a > 0.99:  # low noise: the eps head
            assert (eps - eps_hat).abs().max() < 0.05 * (1 + implied.abs().max())
        if a < 1e-3:  # high noise: x_t itself, the eps of any x0 at alpha_bar = 0
            assert (eps - x_t).abs().max() < 0.05
