"""The discrete Gaussian diffusion of SRDiff: a noise schedule and its closed-form quantities.

Notation of Ho et al. (DDPM): beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod alpha_s.
Every table is computed in float64 and stored as float32, as in the official implementation,
so samples match it to float32 round-off.
"""
import math

import numpy as np
import torch
from torch import nn


def cosine_betas(timesteps, s=0.008, max_beta=0.999):
    """Nichol & Dhariwal's cosine schedule: alpha_bar(i) = cos^2((i/T + s) / (1 + s) * pi/2),
    normalised by alpha_bar(0); beta_i = 1 - alpha_bar_i / alpha_bar_{i-1}, clipped at max_beta."""
    i = np.arange(timesteps + 1, dtype=np.float64)
    alphas_cumprod = np.cos((i / timesteps + s) / (1 + s) * math.pi * 0.5)**2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return np.clip(betas, 0, max_beta)


def _gather(table, t, like):
    """table[t] shaped to broadcast over a batch like ``like`` (B, C, H, W)."""
    return table[t].reshape(t.shape[0], *((1, ) * (like.dim() - 1)))


class GaussianDiffusion(nn.Module):
    """Schedule tables as buffers (they follow the model's device) plus the closed forms."""

    def __init__(self, betas):
        super().__init__()
        betas = np.asarray(betas, dtype=np.float64)
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
        self.num_timesteps = len(betas)

        def buffer(name, value):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32), persistent=False)

        buffer('betas', betas)
        buffer('alphas_cumprod', alphas_cumprod)
        buffer('alphas_cumprod_prev', alphas_cumprod_prev)
        buffer('sqrt_alphas_cumprod', np.sqrt(alphas_cumprod))
        buffer('sqrt_one_minus_alphas_cumprod', np.sqrt(1.0 - alphas_cumprod))
        buffer('sqrt_recip_alphas_cumprod', np.sqrt(1.0 / alphas_cumprod))
        buffer('sqrt_recipm1_alphas_cumprod', np.sqrt(1.0 / alphas_cumprod - 1))
        # posterior q(x_{t-1} | x_t, x_0) (DDPM eq. 6-7); its log variance clipped as at t = 0 it is 0
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        buffer('posterior_variance', posterior_variance)
        buffer('posterior_log_variance_clipped', np.log(np.maximum(posterior_variance, 1e-20)))
        buffer('posterior_mean_coef1', betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod))
        buffer('posterior_mean_coef2', (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod))

    @classmethod
    def from_options(cls, schedule='cosine', timesteps=100, cosine_s=0.008):
        if schedule != 'cosine':
            raise ValueError(f"diffusion.schedule: only 'cosine' (SRDiff's) is supported, got {schedule!r}")
        return cls(cosine_betas(timesteps, cosine_s))

    def q_sample(self, x0, t, eps):
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (DDPM eq. 4)."""
        return _gather(self.sqrt_alphas_cumprod, t, x0) * x0 + _gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * eps

    def predict_x0(self, x_t, t, eps):
        """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), written as the official code."""
        return _gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - _gather(self.sqrt_recipm1_alphas_cumprod, t,
                                                                                x_t) * eps

    def q_posterior(self, x0, x_t, t):
        """Mean and log variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7)."""
        mean = _gather(self.posterior_mean_coef1, t, x_t) * x0 + _gather(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, _gather(self.posterior_log_variance_clipped, t, x_t)
