"""THE sampler table: every reverse process, with its options, checks, step plan, description and NFE.

A sampler is a function ``(denoiser, schedule, x_T, plan, noise, **options) -> x0``:
- ``denoiser(x_t, t) -> (x0, eps)`` (``parametrization.Denoiser``: any parametrization, x0 clamped
  when the model asks), the LR condition already bound in;
- ``plan``: the steps t to visit, first to last, built outside the sampler by the entry's ``plan``
  function (as k-diffusion's ``get_sigmas_*``), so that e.g. the paper's manipulations start any
  sampler at an intermediate step;
- ``noise(k, like)``: the k-th noise draw (``noise.noise_source``: a generator or given noises).

Adding a sampler is one function decorated with ``@register_sampler(...)``: the option checks, the
inference command's flags and choices, the progress bar and the benchmarks read this table.
"""
import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from srdiff_basicsr.errors import OptionsError, is_int, is_number
from srdiff_basicsr.option_spec import Option, checked_options


@dataclass(frozen=True)
class Sampler:
    function: Callable
    plan: Callable  # (num_timesteps, options, start_step) -> the steps to visit
    label: str | Callable  # str.format'ed with the options (and ``steps``), or called with them, for reports
    description: str
    options: dict = field(default_factory=dict)
    nfe: Callable | None = len  # plan -> network evaluations per sample; None: decided while sampling

    def function_options(self, options):
        """The options the function itself takes (the others, such as ``steps``, shape the plan)."""
        params = inspect.signature(self.function).parameters
        return {key: value for key, value in options.items() if key in params}


SAMPLERS = {}


def register_sampler(name, plan, label, description, options=None, nfe=len):
    def register(function):
        SAMPLERS[name] = Sampler(function, plan, label, description, options or {}, nfe)
        return function
    return register


# option checks ----------------------------------------------------------------------------------
def _steps(value, num_timesteps):
    if not is_int(value) or not 1 <= value <= num_timesteps:
        return f'an integer from 1 to {num_timesteps}'


def _spaced_steps(value, num_timesteps):
    if not is_int(value) or not 2 <= value <= num_timesteps:
        return f'an integer from 2 to {num_timesteps}'


def _non_negative(value, num_timesteps):
    if not is_number(value) or not value >= 0:
        return 'a number >= 0'


def _positive(value, num_timesteps):
    if not is_number(value) or not value > 0:
        return 'a number > 0'


ODE_METHODS = ('dopri5', 'bosh3', 'adaptive_heun', 'dopri8')


def _ode_method(value, num_timesteps):
    if value not in ODE_METHODS:
        return f'one of {ODE_METHODS}'


STEPS = Option(20, 'network evaluations', _steps)


def _spacing(value, num_timesteps):
    if value not in SPACINGS:  # (the table is below its functions)
        *first, last = SPACINGS
        return f'{", ".join(first)} or {last}'


SPACING = Option('trailing', 'how the steps lie over the schedule: trailing (from the last step; Lin et al. 2024), '
                 "leading (DDIM's original, diffusers' leading) or linspace (diffusers' linspace)", _spacing)


# step plans --------------------------------------------------------------------------------------
def every_step(num_timesteps, options, start_step):
    """start_step, start_step - 1, ..., ``end_step`` (default 0)."""
    end_step = options.get('end_step', 0)
    if end_step > start_step:
        raise OptionsError(f'end_step: {end_step} is after the first step {start_step}')
    return torch.arange(start_step, end_step - 1, -1)


def trailing_steps(num_timesteps, options, start_step):
    """``steps`` steps from start_step down, evenly spaced: entry i is round(span (steps - i) / steps) - 1 with
    span = start_step + 1 ("trailing", Lin et al. 2024, Table 2), so from T-1 every plan starts at the last
    training step and ends at round(span / steps) - 1, from where the sampler's last update goes to the data.
    Integer arithmetic (a float ``arange`` gives steps + 1 entries for some counts), rounding half to even
    as numpy's ``round`` and diffusers' trailing spacing do."""
    span, steps = start_step + 1, options['steps']
    if steps > span:
        raise OptionsError(f'steps: {steps} steps do not fit between step {start_step} and 0')
    plan = []
    for i in range(steps):
        quotient, remainder = divmod(span * (steps - i), steps)
        round_up = 2 * remainder > steps or (2 * remainder == steps and quotient % 2 == 1)
        plan.append(quotient + round_up - 1)
    return torch.tensor(plan, dtype=torch.int64)


def leading_steps(num_timesteps, options, start_step):
    """DDIM's original spacing (diffusers' "leading"): every (span // steps)-th step from 0 up, visited down, so
    a plan starts below start_step (the flaw Lin et al. 2024 fix with trailing; here to reproduce older runs)."""
    span, steps = start_step + 1, options['steps']
    return torch.arange(steps - 1, -1, -1, dtype=torch.int64) * (span // steps)


def linspace_steps(num_timesteps, options, start_step):
    """diffusers' "linspace" spacing: numpy's linspace(0, start_step, steps) rounded half to even, visited down
    (i * step in float64 with the last entry start_step itself, as numpy computes it)."""
    steps = options['steps']
    if steps == 1:
        raise OptionsError('steps: linspace spacing needs 2 steps or more (its one step would be step 0 alone)')
    stride = start_step / (steps - 1)
    values = [round(i * stride) for i in range(steps - 1)] + [start_step]
    return torch.tensor(values[::-1], dtype=torch.int64)


# ``spacing``: how a sampler's ``steps`` are laid over the schedule's steps
SPACINGS = {'trailing': trailing_steps, 'leading': leading_steps, 'linspace': linspace_steps}


def steps_by_spacing(num_timesteps, options, start_step):
    """``steps`` steps from start_step down by the ``spacing`` option (default trailing)."""
    if options['steps'] > start_step + 1:
        raise OptionsError(f'steps: {options["steps"]} steps do not fit between step {start_step} and 0')
    return SPACINGS[options.get('spacing', 'trailing')](num_timesteps, options, start_step)


def interval(num_timesteps, options, start_step):
    """The real interval [start_step, 0] of an adaptive solver."""
    return torch.tensor([float(start_step), 0.0], dtype=torch.float64)


# the samplers ------------------------------------------------------------------------------------
def _batch_t(value, x):
    return torch.full((x.shape[0], ), int(value), device=x.device, dtype=torch.long)


def _variance(value, num_timesteps):
    if value not in ('posterior', 'beta'):
        return "posterior (beta~_t, DDPM's and SRDiff's) or beta (beta_t, ECDP's)"


def _end_step(value, num_timesteps):
    if not is_int(value) or not 0 <= value < num_timesteps:
        return f'an integer from 0 to {num_timesteps - 1}'


def _ddpm_label(options):
    steps = options['steps'] - options.get('end_step', 0)
    variance = ', variance beta_t' if options.get('variance') == 'beta' else ''
    end = f", ending at step {options['end_step']}" if options.get('end_step') else ''
    return f'DDPM, {steps} steps{variance}{end}'


@register_sampler('ddpm', every_step, _ddpm_label,
                  "ancestral DDPM over every step: the paper's sampler (100 network evaluations)",
                  options={'variance': Option('posterior', 'DDPM noise variance: posterior (beta~_t) or beta (beta_t, '
                                              'ECDP)', _variance),
                           'end_step': Option(0, "DDPM's last step, whose x0 estimate is the sample (ECDP: 5)",
                                              _end_step)})
@torch.no_grad()
def ddpm(denoiser, schedule, x_T, plan, noise, variance='posterior'):
    """DDPM Algorithm 2 via the posterior: x0 from the denoiser, the posterior mean, plus sqrt(variance) z with
    the posterior's variance beta~_t (or beta_t, Ho et al.'s other choice and ECDP's); at the plan's last step the
    denoiser's x0 (at step 0 the posterior mean is x0 itself). The k-th step draws noise k (the last one too,
    unused, as ECDP's)."""
    def posterior(k, step, x0, x):
        mean, log_variance = schedule.q_posterior(x0, x, _batch_t(step, x))
        return mean, (0.5 * log_variance).exp() if variance == 'posterior' else schedule.betas[step].sqrt()
    return _ancestral(denoiser, x_T, plan, noise, posterior)


def spaced_steps(num_timesteps, options, start_step):
    """``steps`` steps spread over [0, start_step] as improved DDPM's (and StableSR's) ``space_timesteps``: a
    stride of start_step / (steps - 1) accumulated in floating point, each entry rounded (half to even), then
    from start_step down."""
    steps = options['steps']
    if steps > start_step + 1 or steps < 2:
        raise OptionsError(f'steps: {steps} respaced steps must be 2 or more and fit between step {start_step} and 0')
    stride, position, taken = start_step / (steps - 1), 0.0, []
    for _ in range(steps):
        taken.append(round(position))
        position += stride
    return torch.tensor(taken[::-1], dtype=torch.int64)


@register_sampler('ddpm_spaced', spaced_steps, 'DDPM, {steps} respaced steps',
                  "ancestral DDPM on evenly spaced steps, each step's posterior that of the respaced schedule "
                  "(improved DDPM's respacing; StableSR's sampler, 200 of 1000 steps)",
                  options={'steps': Option(20, 'network evaluations', _spaced_steps)})
@torch.no_grad()
def ddpm_spaced(denoiser, schedule, x_T, plan, noise):
    """DDPM on the schedule respaced to the plan's steps (``DiscreteSchedule.respaced``): x0 from the denoiser at
    each original step, the posterior of the respaced schedule at its index, plus its noise; the denoiser's x0 at
    the last step. The k-th step draws noise k (the last one too, unused, as StableSR's)."""
    respaced = schedule.respaced(plan.flip(0))
    last = len(plan) - 1

    def posterior(k, step, x0, x):
        mean, log_variance = respaced.q_posterior(x0, x, _batch_t(last - k, x))
        return mean, (0.5 * log_variance).exp()
    return _ancestral(denoiser, x_T, plan, noise, posterior)


def _ancestral(denoiser, x_T, plan, noise, posterior):
    """x <- mean + std z along the plan, (mean, std) = posterior(k, step, x0, x); the last step's x0."""
    x = x_T
    for k, step in enumerate(plan.tolist()):
        x0, _ = denoiser(x, _batch_t(step, x))
        if k == len(plan) - 1:
            return x0
        mean, std = posterior(k, step, x0, x)
        x = mean + std * noise(k, x)
    return x


def _spaced_label(label):
    """A label that names the spacing where it is not the default trailing one."""
    def describe(options):
        spacing = options.get('spacing', 'trailing')
        return label.format(**options) + ('' if spacing == 'trailing' else f', {spacing} spacing')
    return describe


@register_sampler('ddim', steps_by_spacing, _spaced_label('DDIM, {steps} steps, eta {eta}'),
                  'DDIM (trailing steps unless spacing says otherwise); eta 0 deterministic, eta 1 with every step '
                  'is DDPM',
                  options={'steps': STEPS, 'eta': Option(0.0, 'DDIM noise (0: deterministic, 1: ancestral)',
                                                          _non_negative), 'spacing': SPACING})
@torch.no_grad()
def ddim(denoiser, schedule, x_T, plan, noise, eta=0.0):
    """DDIM (Song et al. 2021, eq. 12) with eta; the next "step" after the last has alpha_bar = 1."""
    x = x_T
    steps = plan.tolist()
    for k, step in enumerate(steps):
        x0, eps = denoiser(x, _batch_t(step, x))
        if k == len(steps) - 1:
            return x0
        a_t, a_prev = schedule.alphas_cumprod[step], schedule.alphas_cumprod[steps[k + 1]]
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * noise(k, x)
    return x


@register_sampler('dpmpp_2m', steps_by_spacing, _spaced_label('DPM-Solver++(2M), {steps} steps'),
                  'DPM-Solver++(2M) (diffusers), second order multistep (trailing steps unless spacing says '
                  'otherwise)',
                  options={'steps': STEPS, 'spacing': SPACING})
@torch.no_grad()
def dpmpp_2m(denoiser, schedule, x_T, plan, noise):
    """DPM-Solver++(2M) (Lu et al. 2022): diffusers' scheduler on the schedule's betas, fed the
    denoiser's (clamped) x0; first order at the last step, as diffusers does."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=schedule.num_timesteps, trained_betas=schedule.betas.double().cpu().numpy(),
        algorithm_type='dpmsolver++', solver_order=2, final_sigmas_type='zero', prediction_type='sample')
    scheduler.set_timesteps(timesteps=plan.tolist(), device=x_T.device)
    x = x_T
    for step in scheduler.timesteps:
        x0, _ = denoiser(x, _batch_t(step, x))
        x = scheduler.step(x0, step, x).prev_sample
    return x


def probability_flow(denoiser, schedule, x_T, start_step, end_step, rtol=1e-3, atol=1e-3, method='dopri5',
                     adjoint_params=None):
    """x at step ``end_step`` from x_T at ``start_step`` along the probability-flow ODE, in DDIM's coordinates
    x_bar = x / sqrt(alpha_bar) (Song et al. 2021, eq. 14): d x_bar / d log(sigma_bar) = x_bar - x0, smooth in
    log(sigma_bar). With a clamping denoiser the velocity uses the clamped x0, as DDIM does.

    Differentiable: plain autograd through the solver's steps by default; with ``adjoint_params`` (the tensors
    the denoiser depends on: network parameters, the condition) by the adjoint method
    (``torchdiffeq.odeint_adjoint``), whose memory does not grow with the number of steps."""
    from torchdiffeq import odeint, odeint_adjoint

    sigma_start, sigma_end = schedule.sigma_bar(torch.tensor([float(start_step), float(end_step)],
                                                             device=schedule.log_sigma_bar.device))
    dtype = x_T.dtype

    def velocity(log_sigma_bar, x_bar):
        sigma_bar = log_sigma_bar.exp()
        t = schedule.timestep(sigma_bar).to(dtype).expand(x_bar.shape[0])
        x0, _ = denoiser((x_bar / (1 + sigma_bar**2).sqrt()).to(dtype), t)
        return x_bar - x0.double()

    x_bar = x_T.double() * (1 + sigma_start**2).sqrt()
    span = torch.stack([sigma_start, sigma_end]).log().to(x_T.device)
    if adjoint_params is None:
        x_bar = odeint(velocity, x_bar, span, rtol=rtol, atol=atol, method=method)[-1]
    else:
        x_bar = odeint_adjoint(velocity, x_bar, span, rtol=rtol, atol=atol, method=method,
                               adjoint_params=tuple(adjoint_params))[-1]
    return (x_bar / (1 + sigma_end**2).sqrt()).to(dtype)


@register_sampler('ode', interval,
                  'probability-flow ODE, {method}, rtol {rtol}, atol {atol}, temperature {temperature}',
                  "the probability-flow ODE by torchdiffeq's adaptive solver (--rtol/--atol)",
                  options={'rtol': Option(1e-3, 'ODE solver relative tolerance', _positive),
                           'atol': Option(1e-3, 'ODE solver absolute tolerance', _positive),
                           'method': Option('dopri5', f'adaptive ODE solver, one of {ODE_METHODS}', _ode_method),
                           'temperature': Option(1.0, 'scale of the prior noise x_T (ECDP; 1: the model\'s prior)',
                                                 _non_negative)},
                  nfe=None)
@torch.no_grad()
def ode(denoiser, schedule, x_T, plan, noise, rtol=1e-3, atol=1e-3, method='dopri5', temperature=1.0):
    """``probability_flow`` from plan[0] to plan[-1] starting at temperature * x_T, then the denoiser's x0 there."""
    x = probability_flow(denoiser, schedule, x_T * temperature, plan[0], plan[-1], rtol, atol, method)
    return denoiser(x, torch.full((x.shape[0], ), float(plan[-1]), device=x.device, dtype=x.dtype))[0]


def vp_probability_flow(denoiser, schedule, x_T, start_step, end_time, rtol=1e-3, atol=1e-3, method='dopri5',
                        adjoint_params=None):
    """x at network time ``end_time`` from x_T at step ``start_step`` along the VP SDE's probability-flow ODE in the
    network's time tau (Song et al. 2021, eq. 13): dx/dtau = -beta(tau) / 2 (x - eps / sqrt(1 - alpha_bar(tau)))
    / t_max, ECDP's (300 to 0.1): the state in x's dtype, the time in float64 as torchdiffeq keeps it, the last
    step ending exactly at end_time (``jump_t``). Needs the VP schedule. Differentiable as ``probability_flow``
    (``adjoint_params``: by the adjoint method)."""
    from torchdiffeq import odeint, odeint_adjoint

    if not hasattr(schedule, 'beta_of_time'):
        raise OptionsError('the VP probability flow (ode_vp) needs diffusion.schedule vp (a VP SDE in continuous time)')

    def velocity(tau, x):
        step = schedule.step_of_time(tau).to(x.dtype).expand(x.shape[0])
        _, eps = denoiser(x, step)
        sqrt_1m_ab = schedule.coefficients(step, x)[1]
        return -0.5 * schedule.beta_of_time(tau).to(x.dtype) * (x - eps / sqrt_1m_ab) / schedule.t_max

    time_start = schedule.network_time(torch.tensor([float(start_step)], dtype=torch.float64))[0]
    times = torch.tensor([float(time_start), float(end_time)], dtype=torch.float64, device=x_T.device)
    options = {'rtol': rtol, 'atol': atol, 'method': method, 'options': {'jump_t': times[1:]}}
    if adjoint_params is None:
        return odeint(velocity, x_T, times, **options)[-1]
    return odeint_adjoint(velocity, x_T, times, adjoint_params=tuple(adjoint_params), **options)[-1]


@register_sampler('ode_vp', interval,
                  'probability-flow ODE in VP time, {method}, rtol {rtol}, atol {atol}, to time {t_end}',
                  "ECDP's probability-flow ODE: the VP SDE's in its own time (torchdiffeq's adaptive solver, "
                  'from t_max to --t_end), its state there as the sample',
                  options={'rtol': Option(1e-3, 'ODE solver relative tolerance', _positive),
                           'atol': Option(1e-3, 'ODE solver absolute tolerance', _positive),
                           'method': Option('dopri5', f'adaptive ODE solver, one of {ODE_METHODS}', _ode_method),
                           't_end': Option(0.1, 'network time where ode_vp stops (ECDP: 0.1)', _positive),
                           'temperature': Option(1.0, 'scale of the prior noise x_T (ECDP; 1: the model\'s prior)',
                                                 _non_negative)},
                  nfe=None)
@torch.no_grad()
def ode_vp(denoiser, schedule, x_T, plan, noise, rtol=1e-3, atol=1e-3, method='dopri5', t_end=0.1,
           temperature=1.0):
    """``vp_probability_flow`` from plan[0] to network time ``t_end`` starting at temperature * x_T; its state
    there is the sample (no final denoise), as ECDP's."""
    return vp_probability_flow(denoiser, schedule, x_T * temperature, plan[0], t_end, rtol, atol, method)


# using the table ---------------------------------------------------------------------------------
def sampler_options(sampler_opt, num_timesteps, where='val.sampler'):
    """``{'type': name, **options}`` with the defaults filled in, every option checked; an error naming
    ``where.<option>`` otherwise."""
    sampler_opt = dict(sampler_opt or {})
    name = sampler_opt.pop('type', 'ddpm')
    if name not in SAMPLERS:
        raise OptionsError(f'{where}.type: unknown sampler {name!r}; known: {sorted(SAMPLERS)}')
    return {'type': name, **checked_options(SAMPLERS[name].options, sampler_opt, where, name,
                                            num_timesteps=num_timesteps)}


def _split(sampler_opt):
    options = dict(sampler_opt)
    return SAMPLERS[options.pop('type')], options


def make_plan(sampler_opt, num_timesteps, start_step=None, where='sampler'):
    """The steps a (checked) sampler visits, from ``start_step`` (default T-1) down; an error naming
    ``where.steps`` when they do not fit, or when a builder gave other than ``steps`` strictly decreasing steps
    from start_step, or from below it for leading spacing (a plan is never run with an extra or a missing step)."""
    sampler, options = _split(sampler_opt)
    start_step = num_timesteps - 1 if start_step is None else start_step
    try:
        plan = sampler.plan(num_timesteps, options, start_step)
    except OptionsError as error:
        raise OptionsError(f'{where}.{error}') from None
    if not plan.is_floating_point():
        steps = options.get('steps', start_step + 1 - options.get('end_step', 0))
        first_ok = plan[0] <= start_step if options.get('spacing') == 'leading' else plan[0] == start_step
        if len(plan) != steps or not first_ok or plan[-1] < 0 or (plan[1:] >= plan[:-1]).any():
            raise OptionsError(f'{where}.steps: the {sampler_opt["type"]} plan of {steps} steps from step {start_step} '
                               f'is not {steps} decreasing steps from {start_step} to 0 or above: {plan.tolist()}')
    return plan


def run_sampler(sampler_opt, denoiser, schedule, x_T, noise, start_step=None, where='sampler'):
    """x0 by the (checked) sampler ``sampler_opt`` from x_T taken as the latent at ``start_step``."""
    sampler, options = _split(sampler_opt)
    plan = make_plan(sampler_opt, schedule.num_timesteps, start_step, where)
    return sampler.function(denoiser, schedule, x_T, plan, noise, **sampler.function_options(options))


def expected_nfe(sampler_opt, num_timesteps):
    """Network evaluations per sample, or None for an adaptive sampler."""
    nfe = _split(sampler_opt)[0].nfe
    return None if nfe is None else nfe(make_plan(sampler_opt, num_timesteps))


def describe_sampler(sampler_opt, num_timesteps):
    """E.g. 'DDIM, 20 steps, eta 0.0' (the label of the sampler's table entry)."""
    sampler, options = _split(sampler_opt)
    options = {'steps': num_timesteps, **options}
    return sampler.label(options) if callable(sampler.label) else sampler.label.format(**options)
