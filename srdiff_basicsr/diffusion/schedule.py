"""Noise schedules as data: alpha_bar(t) and the closed forms of the forward process.

Notation of Ho et al. (DDPM): beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod alpha_s, and
sigma_bar_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), the noise level in DDIM's coordinates.
A schedule answers at integer steps from its tables and at any real t in [0, T-1] by interpolating
log(sigma_bar), or by its closed form where it has one (for the samplers that evaluate the network between
steps). Samplers, training and tiling all count in these steps; ``network_time`` is what the network is
given for them (the step itself for SRDiff, the continuous time for ECDP's VP diffusion).

``SCHEDULES`` maps ``diffusion.schedule`` to its builder, its own options with their defaults and its
default number of steps; a new schedule is one function (or class) and one entry.
"""
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.option_spec import Option, positive


def cosine_betas(timesteps, s=0.008, max_beta=0.999):
    """Nichol & Dhariwal's cosine schedule (eq. 17): alpha_bar(i) = cos^2((i/T + s) / (1 + s) * pi/2),
    normalised by alpha_bar(0); beta_i = 1 - alpha_bar_i / alpha_bar_{i-1}, clipped at max_beta."""
    i = np.arange(timesteps + 1, dtype=np.float64)
    alphas_cumprod = np.cos((i / timesteps + s) / (1 + s) * math.pi * 0.5)**2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return np.clip(betas, 0, max_beta)


def _per_sample(values, like):
    """A (B,) tensor shaped to broadcast over a batch like ``like`` (B, C, H, W)."""
    return values.reshape(values.shape[0], *((1, ) * (like.dim() - 1)))


def _interp(x, xp, fp):
    """np.interp for an increasing ``xp``, clamped at the ends."""
    index = torch.searchsorted(xp, x.clamp(xp[0], xp[-1]).reshape(-1)).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[index - 1], xp[index], fp[index - 1], fp[index]
    return (f0 + (f1 - f0) * (x.reshape(-1) - x0) / (x1 - x0)).reshape(x.shape)


class DiscreteSchedule(nn.Module):
    """T steps of a beta schedule: tables as buffers (they follow the model's device) plus the closed forms.

    Every table is computed in float64 and stored as float32, as in the official implementation,
    so samples match it to float32 round-off.
    """

    def __init__(self, betas, table_dtype=np.float64):
        super().__init__()
        betas = np.asarray(betas, dtype=table_dtype)
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
        self.register_buffer('log_sigma_bar', torch.tensor(0.5 * np.log(1.0 / alphas_cumprod.astype(np.float64) - 1)),
                             persistent=False)

    def respaced(self, steps):
        """The schedule of the increasing ``steps`` alone (improved DDPM's respacing, as StableSR's sampler and
        model do it): beta_k = 1 - alpha_bar[s_k] / alpha_bar[s_(k-1)] on the float32 table, its tables computed in
        float32 (the official numbers exactly)."""
        alpha_bar = self.alphas_cumprod.detach().cpu()[torch.as_tensor(steps)]
        previous = torch.cat([torch.ones(1), alpha_bar[:-1]])
        return DiscreteSchedule((1 - alpha_bar / previous).numpy(), table_dtype=np.float32).to(self.betas.device)

    @staticmethod
    def from_options(schedule='cosine', timesteps=None, **options):
        """The schedule of a ``diffusion`` options section (``schedule``, ``timesteps`` and its own options)."""
        if schedule not in SCHEDULES:
            raise OptionsError(f'diffusion.schedule: must be one of {sorted(SCHEDULES)}, got {schedule!r}')
        entry = SCHEDULES[schedule]
        defaults = {key: option.default for key, option in entry.options.items()}
        return entry.build(timesteps or entry.timesteps, **{**defaults, **options})

    # what the network and the training step see ---------------------------------------------------
    def network_time(self, t):
        """The time input of the network at steps ``t``: the step itself (SRDiff's U-Net embeds it)."""
        return t

    def training_steps(self, batch, device):
        """The steps of a training batch: uniform over the T steps (DDPM's Algorithm 1)."""
        return torch.randint(0, self.num_timesteps, (batch, ), device=device)

    # noise level at any real t ------------------------------------------------------------------
    def _steps(self):
        return torch.arange(self.num_timesteps, dtype=torch.float64, device=self.log_sigma_bar.device)

    def sigma_bar(self, t):
        """sigma_bar at real steps ``t`` (float64), log-interpolated between the integer steps."""
        return _interp(t.double(), self._steps(), self.log_sigma_bar).exp()

    def timestep(self, sigma_bar):
        """The real step at which sigma_bar equals ``sigma_bar``: the inverse of ``sigma_bar``."""
        return _interp(sigma_bar.double().log(), self.log_sigma_bar, self._steps())

    def coefficients(self, t, like):
        """(sqrt(alpha_bar), sqrt(1 - alpha_bar), 1 / sqrt(alpha_bar), sigma_bar) at ``t`` for a batch like
        ``like``: table entries at integer t (the official numbers), interpolated at real t."""
        if not t.is_floating_point():
            tables = (self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod, self.sqrt_recip_alphas_cumprod,
                      self.sqrt_recipm1_alphas_cumprod)
            return tuple(_per_sample(table[t], like) for table in tables)
        sigma = self.sigma_bar(t)
        norm = (1 + sigma**2).sqrt()
        return tuple(_per_sample(c.to(like.dtype), like) for c in (1 / norm, sigma / norm, norm, sigma))

    # closed forms ----------------------------------------------------------------------------------
    def q_sample(self, x0, t, eps):
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (DDPM eq. 4)."""
        sqrt_ab, sqrt_1m_ab, _, _ = self.coefficients(t, x0)
        return sqrt_ab * x0 + sqrt_1m_ab * eps

    def predict_x0(self, x_t, t, eps):
        """x0 = x_t / sqrt(alpha_bar_t) - sigma_bar_t eps, written as the official code."""
        _, _, sqrt_recip_ab, sigma = self.coefficients(t, x_t)
        return sqrt_recip_ab * x_t - sigma * eps

    def predict_eps(self, x_t, t, x0):
        """The eps that x_t and x0 imply: (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
        sqrt_ab, sqrt_1m_ab, _, _ = self.coefficients(t, x_t)
        return (x_t - sqrt_ab * x0) / sqrt_1m_ab

    def q_posterior(self, x0, x_t, t):
        """Mean and log variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7), at integer t."""
        mean = _per_sample(self.posterior_mean_coef1[t], x_t) * x0 + _per_sample(self.posterior_mean_coef2[t],
                                                                                   x_t) * x_t
        return mean, _per_sample(self.posterior_log_variance_clipped[t], x_t)


def vp_log_alpha_bar(s, beta_min, beta_max):
    """log alpha_bar of the VP SDE with beta(s) linear from beta_min to beta_max over s in [0, 1]:
    -(beta_min s + (beta_max - beta_min) s^2 / 2) (Song et al. 2021, eq. 29)."""
    return -(beta_min * s + (beta_max - beta_min) * s**2 / 2)


def scaled_linear(timesteps, linear_start=0.00085, linear_end=0.012):
    """Stable Diffusion's schedule (LDM's "linear"): beta = linspace(sqrt(start), sqrt(end), T)^2 in float64, with the
    tables StableSR's model registers in its ``__init__`` (re-spaced over all T steps: betas recomputed from the
    float32 alpha_bar, tables in float32)."""
    betas = np.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=np.float64)**2
    return DiscreteSchedule(betas).respaced(torch.arange(timesteps))


class VPSchedule(DiscreteSchedule):
    """ECDP's continuous-time VP diffusion: time t in [0, t_max], s = t / t_max, alpha_bar in closed form.

    For the step-wise samplers it is discretised in ``timesteps`` (N) steps, step k at time
    t = (k + 1) t_max / N (ECDP: N = t_max = 300, so step k is t = k + 1; step -1 is t = 0); at real steps
    sigma_bar and its inverse are the closed forms. Training draws t uniformly from [0, t_max] (as ECDP),
    and the network is given t itself.
    """

    def __init__(self, timesteps=300, beta_min=0.1, beta_max=20.0, t_max=300.0):
        self.beta_min, self.beta_max, self.t_max = float(beta_min), float(beta_max), float(t_max)
        log_alpha_bar = vp_log_alpha_bar(np.arange(timesteps + 1) / timesteps, self.beta_min, self.beta_max)
        super().__init__(-np.expm1(np.diff(log_alpha_bar)))  # beta_k = 1 - alpha_bar_k / alpha_bar_{k-1}

    def sigma_bar(self, t):
        s = (t.double() + 1) / self.num_timesteps
        return torch.expm1(-vp_log_alpha_bar(s, self.beta_min, self.beta_max)).sqrt()

    def timestep(self, sigma_bar):
        """The inverse of ``sigma_bar``: the root of the quadratic log(1 + sigma_bar^2) = -log alpha_bar(s)."""
        log_ratio, slope = torch.log1p(sigma_bar.double()**2), self.beta_max - self.beta_min
        s = (torch.sqrt(self.beta_min**2 + 2 * slope * log_ratio) - self.beta_min) / slope
        return s * self.num_timesteps - 1

    def network_time(self, t):
        return (t + 1).to(torch.get_default_dtype()) * (self.t_max / self.num_timesteps)

    def step_of_time(self, tau):
        """The real step at network time ``tau``: the inverse of ``network_time``."""
        return tau * (self.num_timesteps / self.t_max) - 1

    def beta_of_time(self, tau):
        """beta(s) = beta_min + (beta_max - beta_min) s at s = tau / t_max."""
        return self.beta_min + (self.beta_max - self.beta_min) * tau / self.t_max

    def training_steps(self, batch, device):
        return torch.rand(batch, device=device, dtype=torch.float64) * self.num_timesteps - 1


@dataclass(frozen=True)
class ScheduleEntry:
    build: Callable  # (timesteps, **options) -> a schedule
    options: dict  # its own ``diffusion`` options: {name: Option}
    timesteps: int  # the default number of steps


SCHEDULES = {
    'cosine': ScheduleEntry(lambda timesteps, cosine_s: DiscreteSchedule(cosine_betas(timesteps, cosine_s)),
                            {'cosine_s': Option(0.008, 'offset s of the cosine alpha_bar (Nichol & Dhariwal 2021)',
                                                positive)}, 100),
    'vp': ScheduleEntry(VPSchedule, {
        'beta_min': Option(0.1, "the VP SDE's beta(s) at s = 0 (ECDP's)", positive),
        'beta_max': Option(20.0, "the VP SDE's beta(s) at s = 1 (ECDP's)", positive),
        't_max': Option(300.0, "the network's time at s = 1 (ECDP's rescaled time)", positive)}, 300),
    'scaled_linear': ScheduleEntry(scaled_linear, {
        'linear_start': Option(0.00085, "the first beta of Stable Diffusion's sqrt-linear betas", positive),
        'linear_end': Option(0.012, "the last beta of Stable Diffusion's sqrt-linear betas", positive)}, 1000),
}
