"""Schedule and sampler against closed forms."""
import math

import numpy as np
import torch

from srdiff_basicsr.diffusion.schedule import DiscreteSchedule, cosine_betas
from tests.conftest import sample


def test_cosine_schedule_has_the_papers_numbers():
    betas = cosine_betas(100, 0.008)
    alpha_bar = np.cumprod(1 - betas)
    f = lambda i: math.cos((i / 100 + 0.008) / 1.008 * math.pi / 2)**2  # noqa: E731
    for i in (1, 10, 50, 99):
        assert abs(alpha_bar[i - 1] - f(i) / f(0)) < 1e-9
    assert abs(betas[0] - 6.3e-4) < 0.05e-4
    assert betas[-1] == 0.999
    assert 2.0e-7 < alpha_bar[-1] < 2.8e-7


def test_q_sample_and_predict_x0_invert_each_other():
    diffusion = DiscreteSchedule(cosine_betas(100))
    torch.manual_seed(0)
    x0, eps = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randn(4, 3, 8, 8)
    t = torch.tensor([0, 10, 60, 98])
    x_t = diffusion.q_sample(x0, t, eps)
    assert torch.allclose(diffusion.predict_x0(x_t, t, eps), x0, atol=1e-4)


def test_posterior_mean_is_the_gaussian_bayes_combination():
    diffusion = DiscreteSchedule(cosine_betas(100))
    t = torch.tensor([30])
    x0, x_t = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), -0.2)
    ab, ab_prev, beta = (diffusion.alphas_cumprod[30].double(), diffusion.alphas_cumprod_prev[30].double(),
                         diffusion.betas[30].double())
    # x_{t-1} prior N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t | x_{t-1} ~ N(sqrt(1-beta) x_{t-1}, beta)
    prior_mean, prior_var = ab_prev.sqrt() * 0.5, 1 - ab_prev
    precision = 1 / prior_var + (1 - beta) / beta
    mean = (prior_mean / prior_var + (1 - beta).sqrt() * -0.2 / beta) / precision
    ours_mean, ours_log_var = diffusion.q_posterior(x0, x_t, t)
    assert abs(ours_mean.item() - mean.item()) < 1e-5
    assert abs(ours_log_var.exp().item() - (1 / precision).item()) < 1e-6
    assert abs(ab.item() - (ab_prev * (1 - beta)).item()) < 1e-7


def test_ddpm_with_the_true_noise_recovers_x0_exactly():
    """A denoiser that knows x0 predicts the noise exactly; every step then keeps x_{t-1} on the
    posterior around the true x0, and the last step returns x0 itself."""
    diffusion = DiscreteSchedule(cosine_betas(100))
    torch.manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8) * 1.8 - 0.9

    def true_eps(x_t, t):
        ab = diffusion.alphas_cumprod[t].view(-1, 1, 1, 1).double()
        return ((x_t.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()).float()

    calls = []
    out = sample('ddpm', lambda x_t, t: calls.append(t[0].item()) or true_eps(x_t, t), diffusion,
                 torch.randn_like(x0), generator=torch.Generator().manual_seed(1))
    assert calls == list(range(99, -1, -1))
    assert (out - x0).abs().max() < 1e-4


def test_ddpm_is_reproducible_with_a_seeded_generator():
    diffusion = DiscreteSchedule(cosine_betas(10))
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    runs = [sample('ddpm', zero, diffusion, torch.ones(1, 3, 4, 4), generator=torch.Generator().manual_seed(5))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = sample('ddpm', zero, diffusion, torch.ones(1, 3, 4, 4), generator=torch.Generator().manual_seed(6))
    assert not torch.equal(runs[0], other)
