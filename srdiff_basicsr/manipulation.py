"""The SRDiff paper's image manipulations (section 5.4), on a sampling pipeline.

Both start the reverse process at an intermediate step t_bar from a latent made of diffused HR
residuals, so they keep the coarse content of that latent and let the LR condition decide the rest.
They sample with the pipeline's sampler from t_bar (the paper: DDPM).
"""
import torch



def _check(pipe, lq, *hrs, t_bar):
    scale = pipe.scale
    for hr in hrs:
        if hr.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
            raise ValueError(f'HR image {tuple(hr.shape[-2:])} is not scale {scale} x the LR {tuple(lq.shape[-2:])}')
    if not 0 <= t_bar < pipe.schedule.num_timesteps:
        raise ValueError(f't_bar must be from 0 to {pipe.schedule.num_timesteps - 1}, got {t_bar}')
    divisor = pipe.unet.divisor
    if any(size % divisor for size in hrs[0].shape[-2:]):
        raise ValueError(f'HR sizes must be multiples of {divisor} (the U-Net halves them), '
                         f'got {tuple(hrs[0].shape[-2:])}')


def _diffuse(pipe, x0, t_bar, noise):
    t = torch.full((x0.shape[0], ), t_bar, device=x0.device, dtype=torch.long)
    return pipe.schedule.q_sample(x0, t, noise)


@torch.no_grad()
def latent_interpolation(pipe, lq, hr_a, hr_b, lam, t_bar=50, generator=None):
    """SR of ``lq`` from lam * x_a + (1 - lam) * x_b, where x_a, x_b are the residuals of two HR images
    (e.g. two SR samples of lq) diffused to t_bar with one noise draw (so the mix stays a latent of
    step t_bar). lam = 1 follows A, 0 follows B. Images (1, 3, H, W) in [0, 1]."""
    _check(pipe, lq, hr_a, hr_b, t_bar=t_bar)
    reference = pipe.space.reference(lq)
    x_a, x_b = pipe.space.encode(hr_a, reference), pipe.space.encode(hr_b, reference)
    noise = torch.randn(x_a.shape, generator=generator, device=x_a.device, dtype=x_a.dtype)
    x_a, x_b = _diffuse(pipe, x_a, t_bar, noise), _diffuse(pipe, x_b, t_bar, noise)
    return pipe(lq, generator=generator, start=(lam * x_a + (1 - lam) * x_b, t_bar))


@torch.no_grad()
def content_fusion(pipe, lq_b, hr_b, hr_a, mask, t_bar=50, generator=None):
    """Region ``mask`` (1, 1, H, W, 1 inside) of HR image A pasted into B, its residual against B's lr_up
    diffused to t_bar and denoised conditioned on B's LR; the region of the result is pasted back into
    B. Small t_bar keeps more of A, large t_bar follows B."""
    _check(pipe, lq_b, hr_b, hr_a, t_bar=t_bar)
    x0 = pipe.space.encode(mask * hr_a + (1 - mask) * hr_b, pipe.space.reference(lq_b))
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    result = pipe(lq_b, generator=generator, start=(_diffuse(pipe, x0, t_bar, noise), t_bar))
    return mask * result + (1 - mask) * hr_b
