"""Step plans for every step count: exactly ``steps`` strictly decreasing integer steps from t_start, by the
trailing rule computed here with exact fractions, and exactly ``steps`` network evaluations when sampled."""
from fractions import Fraction

import pytest
import torch

from srdiff_basicsr.diffusion.samplers import (SAMPLERS, expected_nfe, make_plan, run_sampler, sampler_options,
                                               steps_by_spacing)
from srdiff_basicsr.diffusion.schedule import SCHEDULES, DiscreteSchedule
from srdiff_basicsr.errors import OptionsError

STEPPED = sorted(name for name, entry in SAMPLERS.items() if entry.plan is steps_by_spacing)


def trailing_reference(span, steps):
    """round(span (steps - i) / steps) - 1, exact (Python rounds a Fraction half to even, as numpy)."""
    return [round(Fraction(span * (steps - i), steps)) - 1 for i in range(steps)]


@pytest.mark.parametrize('num_timesteps', [100, 300, 1000])
def test_every_step_count_gives_that_many_decreasing_steps(num_timesteps):
    for name in STEPPED:
        for steps in range(1, num_timesteps + 1):
            opt = sampler_options({'type': name, 'steps': steps}, num_timesteps)
            plan = make_plan(opt, num_timesteps).tolist()
            assert plan == trailing_reference(num_timesteps, steps), (name, steps)
            assert len(plan) == steps and plan[0] == num_timesteps - 1 and plan[-1] >= 0
            assert all(a > b for a, b in zip(plan, plan[1:]))
            assert expected_nfe(opt, num_timesteps) == steps
        assert make_plan(sampler_options({'type': name, 'steps': num_timesteps}, num_timesteps),
                         num_timesteps).tolist() == list(range(num_timesteps - 1, -1, -1))


@pytest.mark.parametrize('num_timesteps', [100, 1000])
def test_every_respaced_step_count_runs_from_the_last_step_to_0(num_timesteps):
    """ddpm_spaced (improved DDPM's float-accumulated stride; its exact lists are golden-tested with StableSR's)."""
    assert STEPPED and 'ddpm_spaced' not in STEPPED
    for steps in range(2, num_timesteps + 1):
        opt = sampler_options({'type': 'ddpm_spaced', 'steps': steps}, num_timesteps)
        plan = make_plan(opt, num_timesteps).tolist()
        assert len(plan) == steps and plan[0] == num_timesteps - 1 and plan[-1] == 0
        assert all(a > b for a, b in zip(plan, plan[1:]))
    assert make_plan({'type': 'ddpm_spaced', 'steps': num_timesteps}, num_timesteps).tolist() == \
        list(range(num_timesteps - 1, -1, -1))
    with pytest.raises(OptionsError, match='sampler.steps: 1 respaced steps must be 2 or more'):
        make_plan({'type': 'ddpm_spaced', 'steps': 1}, num_timesteps)
    with pytest.raises(OptionsError, match='val.sampler.steps: must be an integer from 2 to'):
        sampler_options({'type': 'ddpm_spaced', 'steps': 1}, num_timesteps)


def test_plans_from_an_intermediate_step_and_the_ancestral_plan():
    for t_start in (0, 1, 28, 57, 99):
        assert make_plan({'type': 'ddpm'}, 100, start_step=t_start).tolist() == list(range(t_start, -1, -1))
        for steps in range(1, t_start + 2):
            plan = make_plan({'type': 'ddim', 'steps': steps, 'eta': 0.0}, 100, start_step=t_start).tolist()
            assert plan == trailing_reference(t_start + 1, steps)


def test_a_plan_that_cannot_be_built_names_the_option():
    with pytest.raises(OptionsError, match=r'^val\.sampler\.steps: 30 steps do not fit between step 9 and 0'):
        make_plan({'type': 'ddim', 'steps': 30, 'eta': 0.0}, 100, start_step=9, where='val.sampler')


@pytest.mark.parametrize('schedule_name', sorted(SCHEDULES))
def test_every_schedule_evaluates_the_network_once_per_step(schedule_name):
    schedule = DiscreteSchedule.from_options(schedule_name)
    num_timesteps = schedule.num_timesteps
    x_T = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    for name in STEPPED:
        # every count for ddim on the 100- and 300-step schedules; on 1000 steps the plans of every count are
        # checked above (test_every_step_count_gives_that_many_decreasing_steps) and a spread is sampled here
        every = name == 'ddim' and num_timesteps <= 300
        counts = range(1, num_timesteps + 1) if every else sorted({1, 2, 3, 7, 29, 31, 55, 58, 97, 333, 999,
                                                                   num_timesteps} & set(range(1, num_timesteps + 1)))
        for steps in counts:
            calls = []

            def denoiser(x, t):
                calls.append(t[0].item())
                return x.clamp(-1, 1) * 0.5, x

            opt = sampler_options({'type': name, 'steps': steps}, num_timesteps)
            run_sampler(opt, denoiser, schedule, x_T, lambda k, like: torch.zeros_like(like))
            assert calls == trailing_reference(num_timesteps, steps), (name, steps)


@pytest.mark.parametrize('num_timesteps', [100, 1000])
def test_leading_and_linspace_spacing_are_diffusers_formulas(num_timesteps):
    """diffusers' DDIM spacings, written with numpy: leading (np.arange(steps) * (T // steps))[::-1], linspace
    np.linspace(0, T - 1, steps).round()[::-1]; from an earlier start the span is start_step + 1."""
    import numpy as np
    assert STEPPED == ['ddim', 'dpmpp_2m']
    for name in STEPPED:
        for start in (num_timesteps - 1, num_timesteps // 2 + 3):
            span = start + 1
            for steps in range(1, span + 1):
                leading = make_plan(sampler_options({'type': name, 'steps': steps, 'spacing': 'leading'},
                                                    num_timesteps), num_timesteps, start).tolist()
                assert leading == (np.arange(steps) * (span // steps))[::-1].tolist(), (name, start, steps)
                if steps == 1:  # numpy's linspace of one: step 0 alone, refused
                    with pytest.raises(OptionsError, match='linspace spacing needs 2 steps or more'):
                        make_plan(sampler_options({'type': name, 'steps': 1, 'spacing': 'linspace'}, num_timesteps),
                                  num_timesteps, start)
                    continue
                linspace = make_plan(sampler_options({'type': name, 'steps': steps, 'spacing': 'linspace'},
                                                     num_timesteps), num_timesteps, start).tolist()
                assert linspace == np.linspace(0, start, steps).round().astype(int)[::-1].tolist(), (name, start, steps)
    plan = make_plan(sampler_options({'type': 'ddim', 'steps': 10, 'spacing': 'leading'}, 1000), 1000)
    assert plan[0] == 900 and plan[-1] == 0  # leading starts below the last training step
    schedule, calls = DiscreteSchedule.from_options('cosine', timesteps=100), []
    for spacing in ('leading', 'linspace'):  # sampled: the network sees exactly the plan's steps
        calls.clear()
        opt = sampler_options({'type': 'ddim', 'steps': 7, 'spacing': spacing}, 100)
        run_sampler(opt, lambda x, t: (calls.append(t[0].item()) or x.clamp(-1, 1), x), schedule,
                    torch.randn(1, 1, 2, 2), lambda k, like: torch.zeros_like(like))
        assert calls == make_plan(opt, 100).tolist()


def test_an_unknown_spacing_names_the_option_and_a_labelled_one_says_its_spacing():
    from srdiff_basicsr.diffusion.samplers import describe_sampler
    with pytest.raises(OptionsError, match=r"val.sampler.spacing: must be trailing, leading or linspace, got 'even'"):
        sampler_options({'type': 'ddim', 'spacing': 'even'}, 100, 'val.sampler')
    assert describe_sampler(sampler_options({'type': 'ddim', 'steps': 5}, 100), 100) == 'DDIM, 5 steps, eta 0.0'
    assert describe_sampler(sampler_options({'type': 'dpmpp_2m', 'steps': 5, 'spacing': 'linspace'}, 100), 100) == \
        'DPM-Solver++(2M), 5 steps, linspace spacing'
