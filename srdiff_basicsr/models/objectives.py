"""The training objectives of the family, one table, chosen by ``train.objective: {type: <name>, ...its options}``
(default ``{type: noise}``). An objective is one function and one entry:
``losses(model, state, features) -> ({name: loss}, the same sum for an all-zero output, or None)`` on the model's
batch (``gt``, ``lq``, ``lr_up``: the space's reference), ``features`` the encoder's (None for a condition that
runs the encoder itself); ``state`` is what its ``setup(model, options)`` built once (a loss, the teacher)."""
from dataclasses import dataclass
from typing import Callable

import torch
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger

from srdiff_basicsr.diffusion.condition import conditioned_network, timed_network
from srdiff_basicsr.diffusion.distillation import distillation_targets, nested_plans, student_sampler
from srdiff_basicsr.diffusion.objective import flow_sample, head_losses, noised
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.execution import autocast
from srdiff_basicsr.models.distill_options import complete_distillation
from srdiff_basicsr.models.image_quality import check_image_quality, complete_image_quality
from srdiff_basicsr.pipeline import SRDiffPipeline


@dataclass(frozen=True)
class Objective:
    losses: Callable  # (model, state, features) -> ({name: loss}, trivial loss or None)
    complete: Callable = None  # (opt, options) -> None: defaults and starting weights, before the checks
    check: Callable = None  # (options) -> None
    setup: Callable = None  # (model, options) -> state
    bare_network: bool = False  # the U-Net runs outside DDP (in an ODE solve): gradients averaged after the backward
    sampler: Callable = None  # (options) -> the sampler the trained model samples with by default


def _hr_x0(model):
    with torch.no_grad():  # a target: no gradient through the space's networks
        return model.pipeline.space.encode(model.gt, model.lr_up)


def _regression(model, features, t, x_t, x0, eps):
    """``train.pixel_opt`` between the network's output at (x_t, t) and what its parametrization makes of the
    targets (x0, eps): ``l_noise``, or one loss per head (``l_noise_<head>``, ``train.head_weights``)."""
    schedule = model.pipeline.schedule
    with autocast(model.device, model.train_precision):
        network = conditioned_network(timed_network(model.train_net, schedule, model.train_channels_last),
                                      model.training_condition(features))
        output = network(x_t, t).float()
    return head_losses(output, x0, eps, t, schedule, model.pipeline.parametrization, model.cri_pix,
                       model.opt['train'].get('head_weights'))


def noise_losses(model, state, features):
    """DDPM's Algorithm 1 (the paper's): the HR's x0 noised at random steps, the network regressed on the noise."""
    x0 = _hr_x0(model)
    t, x_t, eps = noised(x0, model.pipeline.schedule)
    return _regression(model, features, t, x_t, x0, eps)


def setup_distillation(model, options):
    teacher = SRDiffPipeline.from_pretrained(options['teacher'], device=model.device, precision='fp32',
                                             channels_last=False)
    for net in (teacher.unet, teacher.encoder, *teacher.space.networks):
        net.eval().requires_grad_(False)
    plans = nested_plans(teacher.schedule.num_timesteps, options['steps'])
    get_root_logger().info(f"Distilling {options['teacher']} (DDIM, {len(plans[1])} steps) into {len(plans[0])} steps")
    return teacher, plans


def distillation_losses(model, state, features):
    """Progressive distillation (Salimans & Ho 2022): x_t at a step of the student's DDIM plan; the target is the
    (x0, eps) pair for which one student step lands where two steps of the frozen teacher land (the teacher
    conditioned through its own encoder on the same batch and reference)."""
    teacher, (student_plan, teacher_plan) = state
    schedule = model.pipeline.schedule
    x0 = _hr_x0(model)
    k = torch.randint(0, len(student_plan), (x0.shape[0], ))
    t = student_plan[k].to(model.device)
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    with torch.no_grad():
        network = teacher.network(teacher.condition(model.lq, model.lr_up), x_t.shape[-2:])
        denoiser = Denoiser(network, teacher.schedule, teacher.parametrization, teacher.clip_x0)
        x0_target, eps_target = distillation_targets(denoiser, schedule, x_t, k, student_plan, teacher_plan)
    return _regression(model, features, t, x_t, x0_target, eps_target)


def setup_image_quality(model, options):
    return build_loss(dict(options['loss'])).to(model.device), options


def image_quality_losses(model, state, features):
    """ECDP's fine-tuning: ``loss`` between the HR and an SR sample of the probability-flow ODE from fresh noise,
    back-propagated through the solve (adjoint or plain): ``l_image_quality``. The U-Net runs undistributed
    inside the solver (DDP allows one forward per backward)."""
    criterion, options = state
    unet = model.get_bare_model(model.net_g)
    schedule = model.pipeline.schedule
    condition = model.training_condition(features)
    cond = condition.at(None)  # projected here, outside autocast, and handed to the adjoint
    conditioned = conditioned_network(timed_network(unet, schedule), condition)

    def network(x_t, t):
        with autocast(model.device, model.train_precision):
            return conditioned(x_t, t).float()

    denoiser = Denoiser(network, schedule, model.pipeline.parametrization, model.pipeline.clip_x0)
    adjoint_params = None
    if options['adjoint']:
        adjoint_params = [p for p in unet.parameters() if p.requires_grad] + ([cond] if cond.requires_grad else [])
    x0 = flow_sample(denoiser, schedule, torch.randn_like(model.lr_up), options['flow'], options['t_end'],
                     options['rtol'], options['atol'], options['method'], adjoint_params)
    loss = criterion(model.pipeline.space.decode(x0, model.lr_up), model.gt)
    return {'l_image_quality': loss[0] if isinstance(loss, tuple) else loss}, None  # PerceptualLoss: (percep, style)


def _no_options(options):
    if set(options) != {'type'}:
        raise OptionsError(f'train.objective: noise has no options, got {sorted(set(options) - {"type"})}')


OBJECTIVES = {
    'noise': Objective(noise_losses, check=_no_options),
    'image_quality': Objective(image_quality_losses, lambda opt, options: complete_image_quality(options),
                               check_image_quality, setup_image_quality, bare_network=True),
    'distillation': Objective(distillation_losses, complete_distillation, setup=setup_distillation,
                              sampler=lambda options: student_sampler(options['steps'])),
}
MOVED = {  # the sections an objective's options were in before train.objective
    'image_quality': "train.image_quality: now train.objective: {type: image_quality, ...the same options}",
    'distill': 'distill: now train.objective: {type: distillation, teacher: ..., steps: ...} (model_type: '
               'SRDiffModel, or StableSRModel for a StableSR student)'}


def objective_options(opt):
    """``train.objective`` of a training run's options, ``{type: noise}`` when not given; the old sections refused
    with their new form."""
    train_opt = opt.get('train') or {}
    if 'image_quality' in train_opt:
        raise OptionsError(MOVED['image_quality'])
    if 'distill' in opt:
        raise OptionsError(MOVED['distill'])
    section = train_opt.get('objective', {'type': 'noise'})
    if not isinstance(section, dict) or section.get('type') not in OBJECTIVES:
        raise OptionsError(f'train.objective: must be {{type: <one of {sorted(OBJECTIVES)}>, ...its options}}, '
                           f'got {section!r}')
    return section
