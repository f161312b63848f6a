"""StableSR's first stage in BasicSR's loop, at the golden tiny configuration: only the SPADEs and the time-aware
encoder train, a killed run resumes bit-exactly, the experiment tests through BasicSR's stock entry, and a student
distils it into fewer DDIM steps and samples in them."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.conversion.stablesr import network_options
from tests.conftest import dataset_opt, differing_tensors, make_pairs, save_basicsr_weights, write_options
from tests.stablesr_fixtures import tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def project(tmp_path_factory, stablesr_golden):
    root = tmp_path_factory.mktemp('stablesr')
    lr_dir, hr_dir = make_pairs(root / 'data', count=4, hr_size=32)
    networks = network_options(tiny_config(stablesr_golden))
    torch.manual_seed(0)
    unet, vae = build_arch(networks['network_g']), build_arch(networks['network_vae'])
    for p in unet.parameters():  # SD's U-Net is trained: no zero-initialised output layers here
        p.data.normal_(0, 0.05)
    unet.empty_context.normal_()
    encoder = build_arch(networks['network_encoder'])
    return root, lr_dir, hr_dir, networks, save_basicsr_weights(unet, root / 'unet.pth'), \
        save_basicsr_weights(vae, root / 'vae.pth'), save_basicsr_weights(encoder, root / 'encoder.pth')


def options(project, name, total_iter=4):
    root, lr_dir, hr_dir, networks, unet, vae, encoder = project
    return write_options(root / f'{name}.yml', dict(
        name=name, model_type='StableSRModel', scale=4, num_gpu=0, manual_seed=0, **networks,
        diffusion=dict(space='vae_latent', schedule='scaled_linear'),
        datasets=dict(train=dataset_opt('train', lr_dir, hr_dir, 'train', gt_size=32),
                      val=dataset_opt('val', lr_dir, hr_dir, 'val')),
        path=dict(pretrain_network_g=unet, pretrain_network_vae=vae, pretrain_network_encoder=encoder,
                  resume_state=None),
        train=dict(optim_g=dict(type='AdamW', lr=1e-3), scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5),
                   total_iter=total_iter, warmup_iter=-1),
        val=dict(val_freq=4, save_img=True, seed=0, sampler=dict(type='ddpm_spaced', steps=2),
                 metrics=dict(psnr=dict(type='calculate_psnr', crop_border=0, test_y_channel=False))),
        logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)))


def run(project, *args):
    return subprocess.run([sys.executable, *args], cwd=project[0], capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'PYTHONPATH': str(REPO)})


def weights(project, name, net):
    return torch.load(project[0] / 'experiments' / name / 'models' / f'{net}_latest.pth', weights_only=True)['params']


def assert_killed_run_resumes_exactly(project, opt_file, nets):
    """Killed as iteration 3 starts and resumed (from 2): the weights of ``nets`` equal the uninterrupted run's."""
    killed = run(project, '-m', 'tests.killed_training', 'iteration:3', '-opt', opt_file)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run(project, '-m', 'srdiff_basicsr.train', '-opt', opt_file, '--auto_resume')
    assert resumed.returncode == 0 and re.search(r'Resuming training from epoch: \d+, iter: 2\.', resumed.stderr)
    for net in nets:
        expected, got = weights(project, 'whole', net), weights(project, 'killed', net)
        assert differing_tensors(expected, got) == [], net


@pytest.fixture(scope='module')
def trained(project):
    """The log of a 4-iteration stage-one run, experiments/whole."""
    result = run(project, '-m', 'srdiff_basicsr.train', '-opt', options(project, 'whole'))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_stage_one_trains_the_spades_and_the_encoder_resumes_exactly_and_tests(project, trained):
    result = trained
    initial = torch.load(project[4], weights_only=True)['params']
    trained = weights(project, 'whole', 'net_g')
    changed = {k for k, v in trained.items() if not torch.equal(v, initial[k])}
    assert changed and all('spade' in k for k in changed)  # SD's U-Net frozen, every SPADE layer trained
    assert {k.split('.spade.')[0] for k in changed} == {k.split('.spade.')[0] for k in initial if '.spade.' in k}
    encoder = torch.load(project[6], weights_only=True)['params']
    assert all(not torch.equal(v, encoder[k]) for k, v in weights(project, 'whole', 'net_encoder').items()
               if k.endswith('.weight'))  # every layer of it trained
    vae = torch.load(project[5], weights_only=True)['params']
    assert all(torch.equal(v, vae[k]) for k, v in weights(project, 'whole', 'net_vae').items())
    assert re.search(r'# psnr: [\d.]+', result.stderr)  # validation sampled through the pipeline

    assert_killed_run_resumes_exactly(project, options(project, 'killed'), ('net_g', 'net_encoder'))

    root, lr_dir, hr_dir, networks = project[:4]
    models = root / 'experiments' / 'whole' / 'models'
    test_file = write_options(root / 'test.yml', dict(
        name='stablesr_test', model_type='StableSRModel', scale=4, num_gpu=0, manual_seed=0, **networks,
        diffusion=dict(space='vae_latent', schedule='scaled_linear'),
        datasets=dict(test_1=dataset_opt('tiny_test', lr_dir, hr_dir, 'test')),
        path=dict(pretrain_network_g=str(models / 'net_g_latest.pth'),
                  pretrain_network_encoder=str(models / 'net_encoder_latest.pth'),
                  pretrain_network_vae=str(models / 'net_vae_latest.pth')),
        val=dict(save_img=True, seed=0, sampler=dict(type='ddpm_spaced', steps=2),
                 metrics=dict(psnr=dict(type='calculate_psnr', crop_border=0, test_y_channel=False)))))
    tested = run(project, '-m', 'basicsr.test', '-opt', test_file)  # the stock entry, through the hook
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert len(list((root / 'results' / 'stablesr_test' / 'visualization' / 'tiny_test').glob('*.png'))) == 4


def student_options(project, name, total_iter=2):
    """A 2-step student of experiments/whole: its starting weights, VAE's included, filled in from the teacher."""
    opt = yaml.safe_load(open(options(project, name, total_iter)))
    opt['path'] = dict(resume_state=None)
    opt['train']['objective'] = {'type': 'distillation', 'teacher': 'experiments/whole', 'steps': 2}
    del opt['val']['sampler']  # the student's own: DDIM in its steps
    return opt


def test_a_stablesr_student_regresses_on_two_teacher_steps_trains_its_spades_and_samples_in_its_steps(
        project, trained, monkeypatch):
    """A 2-step student of experiments/whole, built as BasicSR builds it: one distillation step against two
    written-out DDIM steps of the teacher's time-aware condition; only SPADEs (and the encoder) change; its
    checkpoint's manifest samples in its 2 DDIM steps."""
    import copy

    from basicsr.models import build_model

    from srdiff_basicsr.diffusion.condition import TimeAwareCondition
    from srdiff_basicsr.diffusion.distillation import distillation_targets, nested_plans
    from srdiff_basicsr.diffusion.parametrization import Denoiser
    root = project[0]
    monkeypatch.chdir(root)
    opt = student_options(project, 'student_step')
    opt.pop('datasets')
    opt['train']['precision'] = 'fp32'  # the exact math
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt['path'].update(models=str(root / 'student' / 'models'), training_states=str(root / 'student' / 'states'),
                       results_root=str(root))
    for folder in ('models', 'states'):
        (root / 'student' / folder).mkdir(parents=True)
    model = build_model(opt)
    student_unet, student_encoder = copy.deepcopy(model.net_g), copy.deepcopy(model.net_encoder)
    torch.manual_seed(0)
    model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 32, 32)})
    torch.manual_seed(7)
    model.optimize_parameters(1)

    teacher_unet, teacher_encoder = build_arch(project[3]['network_g']), build_arch(project[3]['network_encoder'])
    teacher_unet.load_state_dict(weights(project, 'whole', 'net_g'))
    teacher_encoder.load_state_dict(weights(project, 'whole', 'net_encoder'))
    schedule, reference = model.pipeline.schedule, model.lr_up
    torch.manual_seed(7)  # the step's draws: the HR latent's posterior sample, the student steps, then the noise
    x0 = model.pipeline.space.encode(model.gt, reference)
    k = torch.randint(0, 2, (2, ))
    student_plan, teacher_plan = nested_plans(schedule.num_timesteps, 2)
    t = student_plan[k]
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    with torch.no_grad():
        teacher_condition = TimeAwareCondition(teacher_encoder, reference.latent, teacher_unet.empty_context)
        teacher = Denoiser(lambda x, s: teacher_unet(x, s, teacher_condition.at(s)), schedule, 'eps', clip_x0=False)
        _, eps_target = distillation_targets(teacher, schedule, x_t, k, student_plan, teacher_plan)
        student_condition = TimeAwareCondition(student_encoder, reference.latent, student_unet.empty_context)
        expected = torch.nn.functional.mse_loss(student_unet(x_t, t, student_condition.at(t)), eps_target)
    assert model.log_dict['l_noise'] == pytest.approx(expected.item(), rel=1e-5)

    teacher_weights = weights(project, 'whole', 'net_g')
    changed = {k for k, v in model.net_g.state_dict().items() if not torch.equal(v, teacher_weights[k])}
    assert changed and all('spade' in k for k in changed)  # StableSR's freezing rules hold for a student
    model.save(0, 1)
    from srdiff_basicsr.pipeline import SRDiffPipeline
    pipe = SRDiffPipeline.from_pretrained(str(root / 'student'))  # the manifest the checkpoint wrote
    assert pipe.sampler_opt['type'] == 'ddim' and pipe.sampler_opt['steps'] == 2
    assert differing_tensors(dict(pipe.space.vae.state_dict()), weights(project, 'whole', 'net_vae')) == []
    sr = pipe(torch.rand(1, 3, 8, 8), seed=0)
    assert pipe.nfe == 2 and sr.shape == (1, 3, 32, 32) and 0 <= sr.min() and sr.max() <= 1


@pytest.mark.parametrize('change,message', [
    ({'objective': {'type': 'image_quality'}}, "train.objective: image_quality: ECDP's fine-tuning is for pixel-space"),
    ({'pretrain_network_vae': None}, r"path.pretrain_network_vae is not set: StableSR starts from the VAE"),
])
def test_the_latent_space_names_what_it_refuses_and_the_weights_it_needs(project, change, message):
    from srdiff_basicsr.errors import OptionsError
    from srdiff_basicsr.models.options import check_options, complete_options
    opt = {**yaml.safe_load(open(options(project, 'refused'))), 'is_train': True}
    for key, value in change.items():
        opt['path' if key.startswith('pretrain') else 'train'][key] = value
    with pytest.raises(OptionsError, match=message):
        check_options(complete_options(opt))
