"""Progressive distillation (Salimans & Ho 2022) of the deterministic DDIM sampler: one DDIM step of the student
is trained to land where two DDIM steps of the frozen teacher land.

The plans are the sampler table's trailing steps: the teacher's 2N-step plan holds the student's N-step plan at
its even positions, so the student's step k (from student_plan[k] to student_plan[k + 1]) spans the teacher's
steps 2k and 2k + 1. The student's last step returns x0 where the teacher's last two steps return it.
"""
import torch

from srdiff_basicsr.diffusion.samplers import trailing_steps


def student_sampler(steps):
    """The sampler a student of ``steps`` steps was distilled for, and samples with by default: deterministic DDIM."""
    return {'type': 'ddim', 'steps': steps, 'eta': 0.0}


def nested_plans(num_timesteps, student_steps):
    """(student plan, teacher plan) of DDIM with ``student_steps`` and twice as many, from the last step."""
    student = trailing_steps(num_timesteps, {'steps': student_steps}, num_timesteps - 1)
    teacher = trailing_steps(num_timesteps, {'steps': 2 * student_steps}, num_timesteps - 1)
    if not torch.equal(teacher[::2], student):  # holds for the trailing spacing; checked all the same
        raise ValueError(f'the {2 * student_steps}-step plan does not contain the {student_steps}-step plan')
    return student, teacher


def _at(table, steps, like):
    return table[steps].reshape(-1, *((1, ) * (like.dim() - 1))).to(like.dtype)


def distillation_targets(teacher, schedule, x_t, k, student_plan, teacher_plan):
    """The (x0, eps) pair at x_t, step ``student_plan[k]`` (per sample), for which one deterministic DDIM step
    of the student lands on the teacher's two steps: x0 = (x_next - (sigma_s / sigma_t) x_t) / (alpha_s -
    (sigma_s / sigma_t) alpha_t) with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar), and eps the one x_t
    and x0 imply; at the student's last step x0 is the teacher's final x0.

    ``teacher``: the teacher's denoiser (x_t, t) -> (x0, eps), as the sampler uses it (clamped when it clamps)."""
    last = len(student_plan) - 1
    t, t_mid = student_plan[k], teacher_plan[2 * k + 1]
    x0, eps = teacher(x_t, t.to(x_t.device))
    ab = schedule.alphas_cumprod
    x_mid = _at(ab, t_mid, x_t).sqrt() * x0 + (1 - _at(ab, t_mid, x_t)).sqrt() * eps
    x0_mid, eps_mid = teacher(x_mid, t_mid.to(x_t.device))
    t_next = student_plan[(k + 1).clamp(max=last)]
    alpha_s, sigma_s = _at(ab, t_next, x_t).sqrt(), (1 - _at(ab, t_next, x_t)).sqrt()
    alpha_t, sigma_t = _at(ab, t, x_t).sqrt(), (1 - _at(ab, t, x_t)).sqrt()
    x_next = alpha_s * x0_mid + sigma_s * eps_mid
    x0_target = (x_next - sigma_s / sigma_t * x_t) / (alpha_s - sigma_s / sigma_t * alpha_t)
    final = (k == last).reshape(-1, *((1, ) * (x_t.dim() - 1))).to(x_t.device)
    x0_target = torch.where(final, x0_mid, x0_target)
    return x0_target, (x_t - alpha_t * x0_target) / sigma_t
