"""What the noise predictor predicts, and the one place where that becomes (x0, eps).

A parametrization is two functions: ``split`` turns the network's output at (x_t, t) into the pair
(x0, eps) every sampler works with, and ``target`` is what the network is trained to output for a
given (x0, eps, t); ``heads``: the names of the images the network outputs (concatenated along the
channels), each trained with its own loss. ``PARAMETRIZATIONS`` maps
``diffusion.parametrization`` to them; a new one is two functions and one entry. Names as in the
literature: eps (Ho et al. 2020, SRDiff), x0 (the "sample" prediction), v (Salimans & Ho 2022:
v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0), hybrid (ECDP: an eps head and an x0 head, trained
both, combined by the noise level).
"""
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Parametrization:
    split: Callable  # (output, x_t, t, schedule) -> (x0, eps)
    target: Callable  # (x0, eps, t, schedule) -> what the network should output
    heads: tuple = ('out', )  # names of the images in the network's output (concatenated along the channels)


def _split_eps(output, x_t, t, schedule):
    return schedule.predict_x0(x_t, t, output), output


def _split_x0(output, x_t, t, schedule):
    return output, schedule.predict_eps(x_t, t, output)


def _split_v(output, x_t, t, schedule):
    sqrt_ab, sqrt_1m_ab, _, _ = schedule.coefficients(t, x_t)
    return sqrt_ab * x_t - sqrt_1m_ab * output, sqrt_1m_ab * x_t + sqrt_ab * output


def _v_target(x0, eps, t, schedule):
    sqrt_ab, sqrt_1m_ab, _, _ = schedule.coefficients(t, x0)
    return sqrt_ab * eps - sqrt_1m_ab * x0


def _split_hybrid(output, x_t, t, schedule):
    """ECDP: eps = alpha_bar eps_hat + (1 - alpha_bar) (x_t - sqrt(alpha_bar) x0_hat) / sqrt(1 - alpha_bar), the
    eps head at low noise and the eps the x0 head implies at high noise; written without the division."""
    eps_hat, x0_hat = output.chunk(2, dim=1)
    sqrt_ab, sqrt_1m_ab, _, _ = schedule.coefficients(t, x_t)
    eps = sqrt_ab**2 * eps_hat + sqrt_1m_ab * (x_t - sqrt_ab * x0_hat)
    return schedule.predict_x0(x_t, t, eps), eps


PARAMETRIZATIONS = {
    'eps': Parametrization(_split_eps, lambda x0, eps, t, schedule: eps),
    'x0': Parametrization(_split_x0, lambda x0, eps, t, schedule: x0),
    'v': Parametrization(_split_v, _v_target),
    'hybrid': Parametrization(_split_hybrid, lambda x0, eps, t, schedule: torch.cat([eps, x0], dim=1),
                              heads=('eps', 'x0')),
}


class Denoiser:
    """The denoiser every sampler calls: (x_t, t) -> (x0, eps), from a network (x_t, t) -> output.

    With ``clip_x0`` (SRDiff's choice) x0 is clamped to [-1, 1] and eps is the one the clamped x0
    implies, as DDIM does; the ancestral sampler uses x0, DDIM and the ODE both. ``t`` may be integer
    steps or real ones (the schedule interpolates).
    """

    def __init__(self, network, schedule, parametrization='eps', clip_x0=True):
        self.network, self.schedule, self.clip_x0 = network, schedule, clip_x0
        self.split = PARAMETRIZATIONS[parametrization].split

    def __call__(self, x_t, t):
        x0, eps = self.split(self.network(x_t, t), x_t, t, self.schedule)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = self.schedule.predict_eps(x_t, t, x0)
        return x0, eps
