"""The fast samplers against closed forms: DDIM(eta=1, all steps) is DDPM, an exact denoiser recovers x0."""
import pytest
import torch

from srdiff_basicsr.diffusion.fast_samplers import (continuous_timestep, ddim_sample, dpmpp_2m_sample, ode_sample,
                                                    sigma_bar_at, trailing_timesteps)
from srdiff_basicsr.diffusion.samplers import ddpm_sample, run_sampler
from srdiff_basicsr.diffusion.schedule import GaussianDiffusion

DIFFUSION = GaussianDiffusion.from_options(timesteps=100)


def some_denoiser():
    """A fixed nonlinear function of (x_t, t), standing in for a trained network."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    return lambda x, t: torch.tanh(conv(x)) + 0.01 * t.float()[:, None, None, None].sin()


def oracle(x0):
    """The network that predicts the true noise of x_t = sqrt(a) x0 + sqrt(1 - a) eps, at any real t."""
    def denoise(x_t, t):
        sigma_bar = sigma_bar_at(DIFFUSION, t.double()).float()[:, None, None, None]
        alpha_bar = 1 / (1 + sigma_bar**2)
        return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
    return denoise


@pytest.mark.parametrize('steps', [1, 7, 20, 30, 100])
def test_trailing_steps_start_at_the_last_step_and_decrease(steps):
    timesteps = trailing_timesteps(100, steps)
    assert len(timesteps) == steps and timesteps[0] == 99 and timesteps[-1] >= 0
    assert (timesteps[1:] < timesteps[:-1]).all()
    if steps == 100:
        assert list(timesteps) == list(range(99, -1, -1))


def test_ddim_with_eta_1_and_all_steps_is_ddpm_step_for_step():
    denoise = some_denoiser()
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(2, 3, 8, 8, generator=generator)
    noises = [torch.randn(2, 3, 8, 8, generator=generator) for _ in range(100)]
    ddpm = ddpm_sample(denoise, DIFFUSION, x_T, noises=noises)
    ddim = ddim_sample(denoise, DIFFUSION, x_T, steps=100, eta=1.0, noises=noises)
    assert (ddpm - ddim).abs().max() < 1e-4
    deterministic = ddim_sample(denoise, DIFFUSION, x_T, steps=100, eta=0.0)
    assert (ddpm - deterministic).abs().max() > 1e-2  # eta matters


@pytest.mark.parametrize('sampler,options', [
    (ddim_sample, dict(steps=5)), (ddim_sample, dict(steps=17)), (dpmpp_2m_sample, dict(steps=5)),
    (dpmpp_2m_sample, dict(steps=12)), (ode_sample, dict(rtol=1e-4, atol=1e-4))])
def test_a_denoiser_predicting_the_true_noise_recovers_x0(sampler, options):
    x0 = torch.rand(2, 3, 8, 8) * 1.8 - 0.9
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    result = sampler(oracle(x0), DIFFUSION, x_T, **options)
    assert (result - x0).abs().max() < 2e-4


def test_continuous_timestep_inverts_the_schedule():
    t = torch.tensor([0.0, 0.5, 13.0, 42.7, 99.0], dtype=torch.float64)
    assert torch.allclose(continuous_timestep(DIFFUSION, sigma_bar_at(DIFFUSION, t)), t, atol=1e-9)
    integer = torch.arange(100)
    assert torch.allclose(sigma_bar_at(DIFFUSION, integer.double()).float(), DIFFUSION.sqrt_recipm1_alphas_cumprod,
                          rtol=1e-6)


def test_ode_tolerance_trades_evaluations_for_accuracy():
    x0, wrong = torch.rand(1, 3, 8, 8) * 1.6 - 0.8, some_denoiser()
    denoise = lambda x, t: oracle(x0)(x, t) + 0.1 * wrong(x, t)  # noqa: E731  (a good but imperfect network)
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    counts = {}
    results = {}
    for tol in (1e-2, 1e-5):
        calls = []
        results[tol] = ode_sample(lambda x, t: calls.append(1) or denoise(x, t), DIFFUSION, x_T, rtol=tol, atol=tol)
        counts[tol] = len(calls)
    assert counts[1e-2] < counts[1e-5]
    assert (results[1e-2] - results[1e-5]).abs().mean() < 0.02


def test_samplers_are_chosen_by_options_and_seeded():
    denoise = some_denoiser()
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    calls = []
    counted = lambda x, t: calls.append(1) or denoise(x, t)  # noqa: E731
    run_sampler({'type': 'dpmpp_2m', 'steps': 9}, counted, DIFFUSION, x_T)
    assert len(calls) == 9
    first = run_sampler({'type': 'ddim', 'steps': 10, 'eta': 0.5}, denoise, DIFFUSION, x_T,
                        generator=torch.Generator().manual_seed(4))
    again = run_sampler({'type': 'ddim', 'steps': 10, 'eta': 0.5}, denoise, DIFFUSION, x_T,
                        generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert torch.equal(run_sampler({'type': 'ddpm'}, denoise, DIFFUSION, x_T, torch.Generator().manual_seed(5)),
                       ddpm_sample(denoise, DIFFUSION, x_T, generator=torch.Generator().manual_seed(5)))
