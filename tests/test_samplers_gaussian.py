"""Every sampler against closed forms on Gaussian data, where an update rule that is wrong anywhere shows.

For x0 ~ N(m, s^2) per pixel, x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps is N(sqrt(a_t) m, v_t) with
v_t = a_t s^2 + 1 - a_t, the exact denoiser is E[x0 | x_t] = m + sqrt(a_t) s^2 / v_t (x_t - sqrt(a_t) m), and the
probability-flow ODE maps x_T to x_t = sqrt(a_t) m + sqrt(v_t / v_T) (x_T - sqrt(a_T) m). With that denoiser
every step of DDPM and DDIM is affine in x_t: the tests follow each chain's states (the denoiser's inputs)
against the same chain computed here in float64 from the papers' equations, with the same noises, and
check the chain's distribution against the data's; the deterministic samplers' states converge to the
ODE's closed form at their order. The tables (alpha_bar) are computed here from the schedules' formulas.
"""
import math

import numpy as np
import pytest
import torch

from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS, Denoiser
from srdiff_basicsr.diffusion.samplers import probability_flow, run_sampler, sampler_options
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.diffusion.noise import noise_source

M, S = 0.3, 0.5  # the data: x0 ~ N(M, S^2) per pixel


def cosine_alpha_bar(timesteps=100, s=0.008):
    """Nichol & Dhariwal eq. 17 with betas clipped at 0.999, as products of (1 - beta)."""
    f = np.cos((np.arange(timesteps + 1) / timesteps + s) / (1 + s) * math.pi / 2)**2
    return np.cumprod(1 - np.clip(1 - f[1:] / f[:-1], 0, 0.999))


def vp_alpha_bar(steps, timesteps=300, beta_min=0.1, beta_max=20.0):
    """ECDP's VP SDE: step k is s = (k + 1) / N, log alpha_bar = -(beta_min s + (beta_max - beta_min) s^2 / 2)."""
    s = (np.asarray(steps, dtype=np.float64) + 1) / timesteps
    return np.exp(-(beta_min * s + (beta_max - beta_min) * s**2 / 2))


SCHEDULES = {'cosine': (DiscreteSchedule.from_options('cosine'), cosine_alpha_bar()),
             'vp': (DiscreteSchedule.from_options('vp'), vp_alpha_bar(np.arange(300)))}


def posterior_mean(x, a):
    return M + math.sqrt(a) * S**2 / (a * S**2 + 1 - a) * (x - math.sqrt(a) * M)


def gaussian_network(schedule, parametrization):
    """The exact denoiser of the data, output in ``parametrization``, at integer or real t (the schedule's
    noise level at t); records every (x_t, t) it is given."""
    def network(x_t, t):
        a = 1 / (1 + schedule.sigma_bar(t.double())[:, None, None, None]**2)
        x = x_t.double()
        x0 = M + a.sqrt() * S**2 / (a * S**2 + 1 - a) * (x - a.sqrt() * M)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        network.calls.append((x_t.clone(), t.clone()))
        return {'eps': eps, 'x0': x0, 'v': a.sqrt() * eps - (1 - a).sqrt() * x0,
                'hybrid': torch.cat([eps, x0], dim=1)}[parametrization].float()
    network.calls = []
    return network


def run(name, schedule, parametrization, x_T, noises=None, t_start=None, **options):
    network = gaussian_network(schedule, parametrization)
    opt = sampler_options({'type': name, **options}, schedule.num_timesteps)
    x0 = run_sampler(opt, Denoiser(network, schedule, parametrization, clip_x0=False), schedule, x_T,
                     noise_source(noises=noises), t_start)
    return x0, [x for x, _ in network.calls], [t[0].item() for _, t in network.calls]


def ddpm_update(x, k, plan, alpha_bar, z):
    """DDPM's ancestral step (Ho et al. eq. 6-7): the posterior q(x_{t-1} | x_t, x0) at the denoiser's x0,
    sqrt(beta~_t) z added except at t = 0."""
    t = plan[k]
    a, a_prev = alpha_bar[t], alpha_bar[t - 1] if t > 0 else 1.0
    beta = 1 - a / a_prev
    x0 = posterior_mean(x, a)
    mean = beta * math.sqrt(a_prev) / (1 - a) * x0 + (1 - a_prev) * math.sqrt(1 - beta) / (1 - a) * x
    return mean + math.sqrt(beta * (1 - a_prev) / (1 - a)) * z if t > 0 else mean


def ddpm_spaced_update(x, k, plan, alpha_bar, z):
    """DDPM's posterior step on the respaced schedule: the previous step is the plan's next, beta = 1 - a / a_next;
    the denoiser's x0 at the last step."""
    a = alpha_bar[plan[k]]
    x0 = posterior_mean(x, a)
    if k == len(plan) - 1:
        return x0
    a_prev = alpha_bar[plan[k + 1]]
    beta = 1 - a / a_prev
    mean = beta * math.sqrt(a_prev) / (1 - a) * x0 + (1 - a_prev) * math.sqrt(1 - beta) / (1 - a) * x
    return mean + math.sqrt(beta * (1 - a_prev) / (1 - a)) * z


def ddim_update(eta):
    """DDIM's step (Song et al. eq. 12): x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - a_prev) / (1 - a) (1 - a / a_prev)); the denoiser's x0 at the last step."""
    def update(x, k, plan, alpha_bar, z):
        a = alpha_bar[plan[k]]
        x0 = posterior_mean(x, a)
        if k == len(plan) - 1:
            return x0
        a_prev = alpha_bar[plan[k + 1]]
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * eps + sigma * z
    return update


def reference_update(name, options):
    return {'ddpm': ddpm_update, 'ddpm_spaced': ddpm_spaced_update}.get(name) or ddim_update(options['eta'])


def reference_chain(update, x, plan, alpha_bar, noises):
    """The states at each step of ``plan`` (the denoiser's inputs), then the sample."""
    states = []
    for k in range(len(plan)):
        states.append(x)
        x = update(x, k, plan, alpha_bar, noises[k])
    return states, x


def chain_moments(update, plan, alpha_bar):
    """(mean, variance) of each state and of the sample from x_T ~ N(0, 1): every step is affine,
    x' = A x + b + c z, with A, b, c read off the step itself."""
    mean, var, moments = 0.0, 1.0, []
    for k in range(len(plan)):
        moments.append((mean, var))
        b = update(0.0, k, plan, alpha_bar, 0.0)
        A, c = update(1.0, k, plan, alpha_bar, 0.0) - b, update(0.0, k, plan, alpha_bar, 1.0) - b
        mean, var = A * mean + b, A * A * var + c * c
    return moments + [(mean, var)]


def ode_solution(x_T, a_T, a_t):
    """The probability-flow ODE's x_t from x_T for Gaussian data."""
    v = lambda a: a * S**2 + 1 - a  # noqa: E731
    return math.sqrt(a_t) * M + math.sqrt(v(a_t) / v(a_T)) * (x_T - math.sqrt(a_T) * M)


def draws(count, shape=(1, 1, 64, 64), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(count)]


def plan_of(name, schedule, **options):
    from srdiff_basicsr.diffusion.samplers import make_plan
    return make_plan(sampler_options({'type': name, **options}, schedule.num_timesteps), schedule.num_timesteps).tolist()


def assert_states_equal(states, reference, atol):
    assert len(states) == len(reference)
    for k, (state, expected) in enumerate(zip(states, reference)):
        error = (state.double() - expected.double()).abs().max().item()
        assert error < atol, f'state {k}: max difference {error:.2e} from the closed form'


# the stochastic samplers: every state equal to the chain computed here, and its distribution the data's ----------
@pytest.mark.parametrize('parametrization', sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize('schedule_name', ['cosine', 'vp'])
@pytest.mark.parametrize('name,options', [('ddpm', {}), ('ddim', {'steps': 10, 'eta': 1.0}),
                                          ('ddim', {'steps': 25, 'eta': 0.5}), ('ddim', {'steps': 7, 'eta': 0.0}),
                                          ('ddpm_spaced', {'steps': 12})])
def test_every_state_follows_the_chain_of_the_papers_equations(name, options, schedule_name, parametrization):
    schedule, alpha_bar = SCHEDULES[schedule_name]
    x_T, *noises = draws(schedule.num_timesteps + 1)
    plan = plan_of(name, schedule, **options)
    x0, states, times = run(name, schedule, parametrization, x_T, noises, **options)
    assert times == plan
    reference, expected = reference_chain(reference_update(name, options), x_T.double(), plan, alpha_bar,
                                          [n.double() for n in noises])
    # float32 round-off grows where 1 - a_t is tiny (the eps parametrization's x0 at the last steps)
    assert_states_equal(states, reference, atol=2e-3)
    assert (x0.double() - expected).abs().max() < 2e-3


@pytest.mark.parametrize('schedule_name', ['cosine', 'vp'])
@pytest.mark.parametrize('name,options', [('ddpm', {}), ('ddim', {'steps': 30, 'eta': 1.0}),
                                          ('ddim', {'steps': 12, 'eta': 0.4}), ('ddpm_spaced', {'steps': 15})])
def test_the_stochastic_chains_have_the_moments_of_their_steps(name, options, schedule_name):
    """Mean and variance over many samples of every state and of the sample against the chain's own."""
    schedule, alpha_bar = SCHEDULES[schedule_name]
    x_T, *noises = draws(schedule.num_timesteps + 1, (1, 1, 128, 128), seed=1)
    x0, states, times = run(name, schedule, 'eps', x_T, noises, **options)
    moments = chain_moments(reference_update(name, options), times, alpha_bar)
    for k, (state, (mean, var)) in enumerate(zip(states[1:] + [x0], moments[1:])):
        assert abs(state.mean().item() - mean) < 0.03 * math.sqrt(var), (k, state.mean().item(), mean)
        assert abs(state.std().item() / math.sqrt(var) - 1) < 0.03, (k, state.std().item(), math.sqrt(var))


@pytest.mark.parametrize('schedule_name', ['cosine', 'vp'])
def test_the_ancestral_chain_over_every_step_samples_the_noisy_marginals_and_the_data(schedule_name):
    """DDPM (and DDIM with eta 1 as the steps grow to all of them) approaches x_t ~ N(sqrt(a_t) m, v_t): within
    the few per cent its posterior variance leaves out at T = 100 (a known bias of the "small" variance)."""
    schedule, alpha_bar = SCHEDULES[schedule_name]
    T = schedule.num_timesteps

    def worst(update, plan):
        moments = chain_moments(update, plan, alpha_bar)
        marginals = [(math.sqrt(alpha_bar[t]) * M, alpha_bar[t] * S**2 + 1 - alpha_bar[t]) for t in plan] + [(M, S**2)]
        return max(max(abs(m - mt) / math.sqrt(vt), abs(math.sqrt(v / vt) - 1))
                   for (m, v), (mt, vt) in zip(moments, marginals))

    every = list(range(T - 1, -1, -1))
    assert worst(ddpm_update, every) < 0.04
    assert worst(ddim_update(1.0), every) == pytest.approx(worst(ddpm_update, every), abs=1e-9)
    coarse = [worst(ddim_update(1.0), plan_of('ddim', schedule, steps=steps, eta=1.0)) for steps in (10, 30, T)]
    assert coarse[0] > coarse[1] > coarse[2]


# the deterministic samplers: the ODE's closed form, approached at their order as the steps grow ---------------
def ode_errors(name, schedule, alpha_bar, parametrization, counts):
    x_T = draws(1, seed=2)[0]
    errors = []
    for steps in counts:
        x0, states, times = run(name, schedule, parametrization, x_T, steps=steps)
        reference = [ode_solution(x_T.double(), alpha_bar[times[0]], alpha_bar[t]) for t in times]
        error = max((s.double() - r).abs().max().item() for s, r in zip(states, reference))
        final = posterior_mean(ode_solution(x_T.double(), alpha_bar[times[0]], alpha_bar[times[-1]]),
                               alpha_bar[times[-1]])
        errors.append(max(error, (x0.double() - final).abs().max().item()))
    return errors


def reference_dpmpp_2m(x, alpha_bar, plan):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in lambda = log(alpha / sigma): first order at the first
    step, then x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D_i with
    D_i = (1 + 1 / 2r_i) x0_{i-1} - 1 / 2r_i x0_{i-2}, r_i = h_{i-1} / h_i; the last step goes to sigma = 0,
    where a first-order step is the denoiser's x0."""
    alpha = lambda t: math.sqrt(alpha_bar[t])  # noqa: E731
    sigma = lambda t: math.sqrt(1 - alpha_bar[t])  # noqa: E731
    lam = lambda t: math.log(alpha(t) / sigma(t))  # noqa: E731
    states, x0s = [], []
    for k, t in enumerate(plan):
        states.append(x)
        x0s.append(posterior_mean(x, alpha_bar[t]))
        if k == len(plan) - 1:
            return states, x0s[-1]
        nxt = plan[k + 1]
        h = lam(nxt) - lam(t)
        if k == 0:
            d = x0s[-1]
        else:
            r = (lam(t) - lam(plan[k - 1])) / h
            d = (1 + 1 / (2 * r)) * x0s[-1] - 1 / (2 * r) * x0s[-2]
        x = sigma(nxt) / sigma(t) * x - alpha(nxt) * math.expm1(-h) * d


@pytest.mark.parametrize('parametrization', sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize('schedule_name', ['cosine', 'vp'])
@pytest.mark.parametrize('steps', [2, 5, 12, 40])
def test_dpmpp_2m_states_follow_the_papers_algorithm(steps, schedule_name, parametrization):
    schedule, alpha_bar = SCHEDULES[schedule_name]
    x_T = draws(1, seed=5)[0]
    x0, states, times = run('dpmpp_2m', schedule, parametrization, x_T, steps=steps)
    assert times == plan_of('dpmpp_2m', schedule, steps=steps)
    reference, expected = reference_dpmpp_2m(x_T.double(), alpha_bar, times)
    assert_states_equal(states, reference, atol=2e-3)
    assert (x0.double() - expected).abs().max() < 2e-3


@pytest.mark.parametrize('schedule_name', ['cosine', 'vp'])
def test_deterministic_samplers_approach_the_ode_as_the_steps_grow(schedule_name):
    """DDIM (eta 0), the first-order exponential integrator of the probability-flow ODE: its largest state error
    shrinks by 1.3 to 2.2 when the steps double; DPM-Solver++(2M), second order, is 3 times closer at once."""
    schedule, alpha_bar = SCHEDULES[schedule_name]
    ddim = ode_errors('ddim', schedule, alpha_bar, 'eps', [10, 20, 40, 80])
    assert all(1.3 < ddim[i] / ddim[i + 1] < 2.2 for i in range(3)), ddim
    dpmpp = ode_errors('dpmpp_2m', schedule, alpha_bar, 'eps', [20, 40, 80])
    assert all(d < e / 3 for d, e in zip(dpmpp, ddim[1:])), (dpmpp, ddim)


@pytest.mark.parametrize('parametrization', sorted(PARAMETRIZATIONS))
@pytest.mark.parametrize('schedule_name', ['cosine', 'vp'])
def test_the_ode_sampler_ends_where_the_ode_does(schedule_name, parametrization):
    schedule, alpha_bar = SCHEDULES[schedule_name]
    x_T = draws(1, seed=3)[0]
    T = schedule.num_timesteps - 1
    x0, _, times = run('ode', schedule, parametrization, x_T, rtol=1e-6, atol=1e-6)
    assert times[-1] == 0.0  # the final denoise at the plan's end
    expected = posterior_mean(ode_solution(x_T.double(), alpha_bar[T], alpha_bar[0]), alpha_bar[0])
    assert (x0.double() - expected).abs().max() < 1e-3


@pytest.mark.parametrize('t_start,t_end', [(299, 200), (299, 30.5), (150, 4), (299, 0)])
def test_the_probability_flow_reaches_the_closed_form_at_intermediate_times(t_start, t_end):
    schedule, _ = SCHEDULES['vp']
    x_T = draws(1, seed=4)[0]
    network = gaussian_network(schedule, 'x0')
    x = probability_flow(Denoiser(network, schedule, 'x0', clip_x0=False), schedule, x_T, t_start, t_end,
                         rtol=1e-7, atol=1e-7)
    expected = ode_solution(x_T.double(), vp_alpha_bar(t_start), vp_alpha_bar(t_end))
    assert (x.double() - expected).abs().max() < 1e-4
