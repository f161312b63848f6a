"""Progressive distillation targets against the sampler table: a student that outputs its targets reproduces the
teacher's DDIM sample with half the steps, and one step of it lands on two of the teacher's."""
import pytest
import torch

from srdiff_basicsr.diffusion.distillation import distillation_targets, nested_plans
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from tests.conftest import sample

SCHEDULE = DiscreteSchedule.from_options('cosine', timesteps=100)


def teacher_network():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    return lambda x, t: (torch.tanh(conv(x)) * (1 + t.float().view(-1, 1, 1, 1) / 100)).detach()


@pytest.mark.parametrize('student_steps', [1, 2, 4, 16])
def test_a_student_outputting_its_targets_samples_as_the_teacher_with_half_the_steps(student_steps):
    network = teacher_network()
    teacher = Denoiser(network, SCHEDULE, 'eps', clip_x0=True)
    student_plan, teacher_plan = nested_plans(100, student_steps)

    def student(x, t):  # the x0 target at its own step, as an x0-predicting network
        k = torch.tensor([student_plan.tolist().index(int(step)) for step in t])
        return distillation_targets(teacher, SCHEDULE, x, k, student_plan, teacher_plan)[0]

    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = sample('ddim', network, SCHEDULE, x_T, steps=2 * student_steps)
    got = sample('ddim', student, SCHEDULE, x_T, steps=student_steps, parametrization='x0', clip_x0=False)
    assert (got - expected).abs().max() < 1e-4


def test_one_student_step_lands_on_two_teacher_steps_per_sample():
    network = teacher_network()
    teacher = Denoiser(network, SCHEDULE, 'eps', clip_x0=True)
    student_plan, teacher_plan = nested_plans(100, 8)
    k = torch.tensor([0, 3, 6])  # different steps in one batch
    x_t = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    x0, eps = distillation_targets(teacher, SCHEDULE, x_t, k, student_plan, teacher_plan)
    ab = SCHEDULE.alphas_cumprod.double()
    for i, step in enumerate(k.tolist()):
        t, t_mid, t_next = (int(s) for s in (student_plan[step], teacher_plan[2 * step + 1], student_plan[step + 1]))
        x = x_t[i:i + 1]
        for a, b in ((t, t_mid), (t_mid, t_next)):  # two deterministic DDIM steps of the teacher, written out
            x0_hat, eps_hat = teacher(x.float(), torch.tensor([a]))
            x = ab[b].sqrt() * x0_hat.double() + (1 - ab[b]).sqrt() * eps_hat.double()
        student_next = ab[t_next].sqrt() * x0[i].double() + (1 - ab[t_next]).sqrt() * eps[i].double()
        assert (student_next - x[0]).abs().max() < 1e-4
        assert torch.allclose(ab[t].sqrt() * x0[i].double() + (1 - ab[t]).sqrt() * eps[i].double(), x_t[i].double(),
                              atol=1e-4)  # a consistent pair at x_t


def test_the_plans_nest():
    for steps in (1, 2, 4, 8, 16, 32):
        student, teacher = nested_plans(100, steps)
        assert len(student) == steps and len(teacher) == 2 * steps and student[0] == teacher[0] == 99


def distill_model(tmp_path, steps=2, **changes):
    """A student of a tiny 10-step teacher experiment, built as BasicSR builds a model from options."""
    from basicsr.models import build_model

    from tests.conftest import TINY_ENCODER, TINY_UNET, make_experiment, srdiff_options
    teacher = make_experiment(tmp_path / 'teacher', timesteps=10)
    opt = srdiff_options('student', None, None, None, timesteps=10)
    opt.pop('datasets')
    opt.update(is_train=True, dist=False, rank=0, world_size=1,
               network_g=dict(TINY_UNET, encoder_num_feat=8, encoder_num_block=2), network_encoder=dict(TINY_ENCODER))
    opt['train']['objective'] = {'type': 'distillation', 'teacher': str(teacher), 'steps': steps}
    opt['path'].update(pretrain_network_encoder=None, models=str(tmp_path / 'models'),
                       training_states=str(tmp_path / 'states'), results_root=str(tmp_path))
    opt['train']['pixel_opt'] = {'type': 'MSELoss', 'loss_weight': 1.0}
    for key, value in changes.items():
        *sections, leaf = key.split('__')
        node = opt
        for section in sections:
            node = node[section]
        node[leaf] = value
    return build_model(opt), teacher


def test_a_new_student_is_the_teacher_and_samples_as_it(tmp_path):
    from srdiff_basicsr.pipeline import SRDiffPipeline
    model, teacher_folder = distill_model(tmp_path)
    teacher = SRDiffPipeline.from_pretrained(str(teacher_folder))
    lq = torch.rand(1, 3, 4, 4)
    for steps in (4, 2):
        expected = teacher(lq, seed=3, sampler='ddim', steps=steps)
        assert torch.equal(model.pipeline(lq, seed=3, sampler='ddim', steps=steps), expected)
    assert model.pipeline.sampler_opt == {'type': 'ddim', 'steps': 2, 'eta': 0.0, 'spacing': 'trailing'}  # its steps


@pytest.mark.parametrize('student_parametrization', ['eps', 'v'])
def test_a_distillation_step_regresses_the_student_on_two_teacher_steps(tmp_path, student_parametrization):
    import copy
    model, _ = distill_model(tmp_path, steps=2, diffusion__parametrization=student_parametrization,
                             train__precision='fp32')  # the exact math
    student = copy.deepcopy(model.net_g)
    torch.manual_seed(0)
    model.feed_data({'lq': torch.rand(3, 3, 4, 4), 'gt': torch.rand(3, 3, 16, 16)})
    torch.manual_seed(7)
    model.optimize_parameters(1)
    torch.manual_seed(7)  # the step's draws: the student steps, then the noise
    schedule = model.pipeline.schedule
    k = torch.randint(0, 2, (3, ))
    x0 = model.pipeline.space.encode(model.gt, model.lr_up)
    _, (student_plan, _) = model.objective_state
    t = student_plan[k]
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    with torch.no_grad():
        teacher_unet = model.objective_state[0].unet
        cond = teacher_unet.project_condition(model.net_encoder.features(model.lq), model.lr_up * 2 - 1)
        teacher = Denoiser(lambda x, s: teacher_unet(x, s, cond), schedule, 'eps', clip_x0=True)
        x0_target, eps_target = distillation_targets(teacher, schedule, x_t, k, *nested_plans(10, 2))
        if student_parametrization == 'v':  # Salimans & Ho: v = alpha eps - sigma x0, with the teacher still eps
            alpha_bar = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
            eps_target = alpha_bar.sqrt() * eps_target - (1 - alpha_bar).sqrt() * x0_target
        expected = torch.nn.functional.mse_loss(student(x_t, t, cond), eps_target)
    assert model.log_dict['l_noise'] == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize('changes,message', [
    ({'train__objective__steps': 6}, r'train.objective.steps: must be an integer from 1 to 5'),
    ({'network_g__dim': 16}, r"train.objective.teacher: the student must have the teacher's networks and "
                             r'diffusion; these differ from .*: network_g.dim'),
    ({'diffusion__timesteps': 20}, r'these differ from .*: diffusion.timesteps'),
    ({'diffusion__parametrization': 'hybrid'}, r'diffusion.parametrization'),
    ({'train__objective__teacher': 'nowhere'}, r'train.objective.teacher: .*no such file or folder: nowhere'),
])
def test_distillation_options_are_checked_against_the_teacher(tmp_path, changes, message):
    from srdiff_basicsr.errors import OptionsError
    with pytest.raises(OptionsError, match=message):
        distill_model(tmp_path, **changes)


def test_a_student_samples_as_it_was_distilled_unless_told_otherwise(tmp_path, monkeypatch):
    import cv2

    from srdiff_basicsr.infer import main
    from srdiff_basicsr.pipeline import SRDiffPipeline
    from tests.conftest import make_experiment
    student = str(make_experiment(tmp_path / 'student', timesteps=10,
                                  train={'objective': {'type': 'distillation', 'teacher': 'experiments/teacher',
                                                       'steps': 4}}))
    pipe = SRDiffPipeline.from_pretrained(student)
    assert pipe.sampler_opt == {'type': 'ddim', 'steps': 4, 'eta': 0.0, 'spacing': 'trailing'}
    assert SRDiffPipeline.from_pretrained(student, sampler={'type': 'ddpm'}).sampler_opt['type'] == 'ddpm'
    lq = torch.rand(1, 3, 4, 4)
    expected = pipe(lq, seed=0)
    assert pipe.nfe == 4
    assert torch.equal(expected, SRDiffPipeline.from_pretrained(student)(lq, seed=0, sampler='ddim', steps=4))

    cv2.imwrite(str(tmp_path / 'lr.png'), (lq[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype('uint8'))
    steps = []
    original = SRDiffPipeline.__call__

    def counted(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        steps.append(self.nfe)
        return result
    monkeypatch.setattr(SRDiffPipeline, '__call__', counted)
    for flags, nfe in (([], 4), (['--steps', '2'], 2), (['--sampler', 'ddpm'], 10)):
        assert main([str(tmp_path / 'lr.png'), '-o', str(tmp_path / f'out{nfe}'), '--model', student] + flags) == 0
        assert steps[-1] == nfe
