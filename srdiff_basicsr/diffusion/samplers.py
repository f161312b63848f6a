"""Reverse processes, each a function of a denoiser, the diffusion tables and x_T.

``denoise_fn(x_t, t)`` returns the predicted noise eps for a batch of integer steps ``t``; the LR
condition is bound into it by the caller, so a sampler never recomputes it.
"""
import torch

from srdiff_basicsr.diffusion.noise import randn


@torch.no_grad()
def ddpm_sample(denoise_fn, diffusion, x_T, noises=None, generator=None, clip_x0=True, callback=None, t_start=None):
    """SRDiff's sampler: ancestral DDPM over all T steps (DDPM Algorithm 2, via the posterior).

    Each step predicts x0 from eps, clamps it to [-1, 1], takes the posterior mean and adds
    sqrt(posterior variance) * z except at t = 0.

    Args:
        denoise_fn: (x_t, t) -> eps.
        diffusion (GaussianDiffusion): the schedule tables, on x_T's device.
        x_T (Tensor): the starting noise (B, C, H, W).
        noises (sequence[Tensor] | None): the z of each step in sampling order (step k is
            t = T-1-k); drawn from ``generator`` when None.
        generator (torch.Generator | list | None): source of z when ``noises`` is None (a list of
            (generator, rows): see ``noise.randn``).
        clip_x0 (bool): clamp the predicted x0 to [-1, 1] (SRDiff does).
        callback: called as callback(t, x0_pred) after each step.
        t_start (int | None): start from x_T taken as x at this step (default T-1), e.g. a
            diffused image for the paper's manipulations.

    Returns:
        Tensor: x_0.
    """
    x = x_T
    batch = x.shape[0]
    first = diffusion.num_timesteps - 1 if t_start is None else t_start
    for k, step in enumerate(range(first, -1, -1)):
        t = torch.full((batch, ), step, device=x.device, dtype=torch.long)
        x0_pred = diffusion.predict_x0(x, t, denoise_fn(x, t))
        if clip_x0:
            x0_pred = x0_pred.clamp(-1.0, 1.0)
        mean, log_variance = diffusion.q_posterior(x0_pred, x, t)
        if step > 0:
            z = noises[k] if noises is not None else randn(x.shape, generator, x.device, x.dtype)
            x = mean + (0.5 * log_variance).exp() * z
        else:
            x = mean
        if callback is not None:
            callback(step, x0_pred)
    return x


# every sampler's options and their defaults (``val.sampler`` / the inference command's flags)
SAMPLER_DEFAULTS = {
    'ddpm': {},
    'ddim': {'steps': 20, 'eta': 0.0},
    'dpmpp_2m': {'steps': 20},
    'ode': {'rtol': 1e-3, 'atol': 1e-3, 'method': 'dopri5'},
}


def run_sampler(sampler_opt, denoise_fn, diffusion, x_T, generator=None, clip_x0=True):
    """x_0 by the sampler ``sampler_opt['type']`` with its options (checked: see ``SAMPLER_DEFAULTS``)."""
    from srdiff_basicsr.diffusion import fast_samplers

    options = {key: value for key, value in sampler_opt.items() if key != 'type'}
    kind = sampler_opt.get('type', 'ddpm')
    if kind == 'ddpm':
        return ddpm_sample(denoise_fn, diffusion, x_T, generator=generator, clip_x0=clip_x0)
    if kind == 'ddim':
        return fast_samplers.ddim_sample(denoise_fn, diffusion, x_T, generator=generator, clip_x0=clip_x0, **options)
    if kind == 'dpmpp_2m':
        return fast_samplers.dpmpp_2m_sample(denoise_fn, diffusion, x_T, clip_x0=clip_x0, **options)
    if kind == 'ode':
        return fast_samplers.ode_sample(denoise_fn, diffusion, x_T, clip_x0=clip_x0, **options)
    raise ValueError(f'unknown sampler {kind!r}; known: {sorted(SAMPLER_DEFAULTS)}')
