import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from srdiff_basicsr.diffusion.condition import ProjectedCondition, conditioned_network, timed_network
from srdiff_basicsr.diffusion.distillation import distillation_targets, nested_plans
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.models.options import complete_distill_options
from srdiff_basicsr.models.srdiff_model import SRDiffModel
from srdiff_basicsr.pipeline import SRDiffPipeline


@MODEL_REGISTRY.register()
class SRDiffDistillModel(SRDiffModel):
    """Progressive distillation of an SRDiff (or ECDP) into a student sampled by DDIM in ``distill.steps`` steps
    (Salimans & Ho 2022): the student starts from the teacher (or from the previous stage's student) and shares
    its frozen encoder; each training step draws x_t at a step of the student's plan, and the target is the
    (x0, eps) pair for which one DDIM step of the student lands where two of the frozen teacher land
    (``diffusion.distillation``), in the student's parametrization, with ``train.pixel_opt`` (e.g. MSELoss).

    Options (besides SRDiffModel's):
        distill.teacher: the teacher's experiment folder (its EMA weights when saved), a converted checkpoint
            folder or a ``net_g`` file; a stage's teacher is the previous stage's student.
        distill.steps: the student's DDIM steps (the teacher takes twice as many, on the same trailing plan).
    The student's ``network_g``, ``network_encoder``, ``scale`` and ``diffusion`` must be the teacher's, except
    ``diffusion.parametrization`` (same number of heads): an eps student cannot take one step from pure noise (x0
    = (x_t - sigma eps) / alpha amplifies its error by 1 / alpha), so few-step students use v (Salimans & Ho).
    A distilled experiment is an ordinary SRDiff one: sample it with ``ddim`` and ``steps``.
    """

    def __init__(self, opt):
        complete_distill_options(opt)
        super().__init__(opt)
        if self.is_train:
            teacher = SRDiffPipeline.from_pretrained(opt['distill']['teacher'], device=self.device)
            self.teacher_unet = teacher.unet.eval().requires_grad_(False)
            self.teacher_parametrization, self.teacher_clip_x0 = teacher.parametrization, teacher.clip_x0
            self.student_plan, self.teacher_plan = nested_plans(self.pipeline.schedule.num_timesteps,
                                                                opt['distill']['steps'])
            get_root_logger().info(f"Distilling {opt['distill']['teacher']} (DDIM, {len(self.teacher_plan)} steps) "
                                   f'into {len(self.student_plan)} steps')

    def _training_targets(self, features):
        schedule = self.pipeline.schedule
        x0 = self.pipeline.space.encode(self.gt, self.lr_up)
        k = torch.randint(0, len(self.student_plan), (x0.shape[0], ))
        t = self.student_plan[k].to(self.device)
        x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
        with torch.no_grad():
            condition = ProjectedCondition(self.teacher_unet, features, self.lr_up, self.opt['scale'])
            teacher = Denoiser(conditioned_network(timed_network(self.teacher_unet, schedule), condition), schedule,
                               self.teacher_parametrization, self.teacher_clip_x0)
            x0_target, eps_target = distillation_targets(teacher, schedule, x_t, k, self.student_plan,
                                                         self.teacher_plan)
        return t, x_t, x0_target, eps_target
