"""Samplers with fewer network evaluations than SRDiff's 100-step DDPM.

Same interface as ``ddpm_sample``: ``denoise_fn(x_t, t)`` predicts eps for a batch of steps t; the
deterministic samplers also call it at non-integer t (the U-Net's sinusoidal time embedding is
defined for any real t).

- ``ddim_sample``: DDIM (Song et al. 2021) with ``eta`` on "trailing" steps (Lin et al. 2024, Table 2),
  so that every schedule starts at the last training step T-1 and ends at t = 0. Written here rather
  than taken from diffusers, whose DDIMScheduler steps to t - T // steps, which is not the next
  trailing step when ``steps`` does not divide T.
- ``dpmpp_2m_sample``: DPM-Solver++(2M) (Lu et al. 2022), diffusers' DPMSolverMultistepScheduler on
  SRDiff's betas, trailing steps, x0 clamped to [-1, 1] as SRDiff does.
- ``ode_sample``: the probability-flow ODE of the discrete schedule, in DDIM's coordinates
  (x_bar = x / sqrt(alpha_bar), sigma_bar = sqrt((1 - alpha_bar) / alpha_bar): d x_bar / d sigma_bar =
  eps), in log(sigma_bar), solved by torchdiffeq's adaptive ``dopri5`` from t = T-1 to t = 0, then one
  denoising step. With ``clip_x0`` the velocity uses the eps implied by the clamped x0, as DDIM does.
"""
import numpy as np
import torch

from srdiff_basicsr.diffusion.noise import randn


def trailing_timesteps(num_timesteps, steps):
    """``steps`` training steps from T-1 down, evenly spaced and rounded ("trailing")."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f'steps must be between 1 and {num_timesteps}, got {steps}')
    return (np.round(np.arange(num_timesteps, 0, -num_timesteps / steps)) - 1).astype(np.int64)


def _batch_t(value, x):
    return torch.full((x.shape[0], ), value, device=x.device, dtype=torch.long)


@torch.no_grad()
def ddim_sample(denoise_fn, diffusion, x_T, steps, eta=0.0, generator=None, noises=None, clip_x0=True):
    """DDIM from x_T over ``steps`` trailing steps; eta = 0 is deterministic, eta = 1 with all T steps is
    SRDiff's ancestral DDPM (the same posterior), step for step. ``noises`` as in ``ddpm_sample``."""
    timesteps = trailing_timesteps(diffusion.num_timesteps, steps)
    alphas_cumprod = diffusion.alphas_cumprod
    x = x_T
    for k, step in enumerate(timesteps):
        t = _batch_t(int(step), x)
        eps = denoise_fn(x, t)
        x0 = diffusion.predict_x0(x, t, eps)
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        if k == len(timesteps) - 1:
            return x0  # the next "step" has alpha_bar = 1: x_{-1} = x0
        a_t, a_prev = alphas_cumprod[step], alphas_cumprod[timesteps[k + 1]]
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # the eps that the (clamped) x0 implies
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            z = noises[k] if noises is not None else randn(x.shape, generator, x.device, x.dtype)
            x = x + sigma * z
    return x


@torch.no_grad()
def dpmpp_2m_sample(denoise_fn, diffusion, x_T, steps, clip_x0=True):
    """DPM-Solver++(2M), second order multistep, first order at the last step (diffusers' default)."""
    from diffusers import DPMSolverMultistepScheduler

    # thresholding with sample_max_value 1 is a plain clamp of x0 to [-1, 1]: the threshold
    # quantile(|x0|) is clamped to [1, sample_max_value] = 1
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=diffusion.num_timesteps, trained_betas=diffusion.betas.double().cpu().numpy(),
        algorithm_type='dpmsolver++', solver_order=2, timestep_spacing='trailing', final_sigmas_type='zero',
        thresholding=clip_x0, sample_max_value=1.0, prediction_type='epsilon')
    scheduler.set_timesteps(steps, device=x_T.device)
    x = x_T
    for step in scheduler.timesteps:
        x = scheduler.step(denoise_fn(x, _batch_t(int(step), x)), step, x).prev_sample
    return x


def continuous_timestep(diffusion, sigma_bar):
    """The real-valued t at which the schedule's sigma_bar (log-interpolated between steps) equals ``sigma_bar``."""
    table = diffusion.sqrt_recipm1_alphas_cumprod.double().log()
    return _interp(sigma_bar.double().log(), table, torch.arange(len(table), dtype=torch.float64, device=table.device))


def sigma_bar_at(diffusion, t):
    """The inverse of ``continuous_timestep``."""
    table = diffusion.sqrt_recipm1_alphas_cumprod.double().log()
    return _interp(t.double(), torch.arange(len(table), dtype=torch.float64, device=table.device), table).exp()


def _interp(x, xp, fp):
    """np.interp for an increasing ``xp``, clamped at the ends."""
    index = torch.searchsorted(xp, x.clamp(xp[0], xp[-1]).reshape(-1)).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[index - 1], xp[index], fp[index - 1], fp[index]
    return (f0 + (f1 - f0) * (x.reshape(-1) - x0) / (x1 - x0)).reshape(x.shape)


@torch.no_grad()
def ode_sample(denoise_fn, diffusion, x_T, rtol=1e-3, atol=1e-3, method='dopri5', clip_x0=True):
    """The probability-flow ODE from t = T-1 to t = 0 by an adaptive solver, then x0 at t = 0."""
    from torchdiffeq import odeint

    sigma_max = diffusion.sqrt_recipm1_alphas_cumprod[-1].double()
    sigma_min = diffusion.sqrt_recipm1_alphas_cumprod[0].double()
    dtype = x_T.dtype

    def velocity(log_sigma_bar, x_bar):
        # d x_bar / d log(sigma_bar) = sigma_bar * eps = x_bar - x0: smooth in log(sigma_bar), no sign change;
        # with clip_x0 the eps is the one the clamped x0 implies, as in DDIM (SRDiff's samples need the clamp)
        sigma_bar = log_sigma_bar.exp()
        t = continuous_timestep(diffusion, sigma_bar).to(dtype).expand(x_bar.shape[0])
        eps = denoise_fn((x_bar / (1 + sigma_bar**2).sqrt()).to(dtype), t).double()
        x0 = x_bar - sigma_bar * eps
        return x_bar - (x0.clamp(-1.0, 1.0) if clip_x0 else x0)

    x_bar_T = x_T.double() * (1 + sigma_max**2).sqrt()
    span = torch.stack([sigma_max, sigma_min]).log().to(x_T.device)
    x_bar = odeint(velocity, x_bar_T, span, rtol=rtol, atol=atol, method=method)[-1]
    x = (x_bar / (1 + sigma_min**2).sqrt()).to(dtype)
    t = _batch_t(0, x)
    x0 = diffusion.predict_x0(x, t, denoise_fn(x, t))
    return x0.clamp(-1.0, 1.0) if clip_x0 else x0
