"""The training objectives of the family, in the model's space: DDPM's Algorithm 1 (x0 noised at random steps,
the loss of each head of the network against what its parametrization makes of (x0, eps)), and the differentiable
ODE sample of ECDP's image-quality fine-tuning."""
import torch

from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.samplers import probability_flow, vp_probability_flow


def noised(x0, schedule):
    """(t, x_t, eps): x0 noised at steps drawn by ``schedule.training_steps`` with fresh Gaussian noise."""
    t = schedule.training_steps(x0.shape[0], x0.device)
    eps = torch.randn_like(x0)
    return t, schedule.q_sample(x0, t, eps), eps


def head_losses(output, x0, eps, t, schedule, parametrization, criterion, head_weights=None):
    """({loss name: weighted loss}, the same sum for an all-zero output): ``criterion`` between each head of the
    network's ``output`` and its target (``l_noise``; with several heads, as ECDP's hybrid, ``l_noise_<head>``
    weighted by ``head_weights``, a head of weight 0 left out). The all-zero loss, without gradient, is what a
    collapsed network would score (``models.collapse``)."""
    param = PARAMETRIZATIONS[parametrization]
    heads = param.heads
    weights = head_weights if len(heads) > 1 else {heads[0]: 1}
    target = param.target(x0, eps, t, schedule)
    losses, trivial = {}, 0
    for head, out, goal in zip(heads, output.chunk(len(heads), 1), target.chunk(len(heads), 1)):
        if weights[head] > 0:
            losses[f'l_noise_{head}' if len(heads) > 1 else 'l_noise'] = weights[head] * criterion(out, goal)
            with torch.no_grad():
                trivial = trivial + weights[head] * criterion(torch.zeros_like(out), goal)
    return losses, trivial


def flow_sample(denoiser, schedule, x_T, flow, end_time, rtol, atol, method, adjoint_params=None):
    """x0 of the probability-flow ODE solved from x_T at the last step, with its gradient (ECDP's image-quality
    fine-tuning): ``flow`` ode (this project's: to step 0, then the denoiser's x0 there) or ode_vp (ECDP's: in
    the VP SDE's time to ``end_time``, its state there). ``adjoint_params``: back-propagate by the adjoint method
    with respect to these (None: plain back-propagation through the solver's steps)."""
    last = schedule.num_timesteps - 1
    if flow == 'ode_vp':
        return vp_probability_flow(denoiser, schedule, x_T, last, end_time, rtol, atol, method, adjoint_params)
    x = probability_flow(denoiser, schedule, x_T, last, 0, rtol, atol, method, adjoint_params)
    x0, _ = denoiser(x, torch.zeros(x.shape[0], device=x.device, dtype=x.dtype))
    return x0
