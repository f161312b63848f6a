"""ECDP against its official code (shared/reference/golden/ecdp_official.pt, both released configurations):
the converter, RRDB features, the residual's base, the condition at every level, the U-Net at the recorded
times, the training loss and its gradients, the ancestral chain, DDIM and the probability-flow ODE."""
import math
import re
import zlib

import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr.conversion.ecdp import convert_ecdp_state_dict
from srdiff_basicsr.diffusion.noise import noise_source
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.samplers import run_sampler, sampler_options
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.network_options import schedule_options
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import TEST_DEVICE, load_golden, load_script

CONFIGS = ['df2k', 'celeba']


@pytest.fixture(scope='module')
def golden():
    return load_golden('ecdp_official.pt')


def official_weights(case):
    """The golden file's recipe: every parameter drawn from a generator seeded with its key's crc32."""
    state_dict = {}
    for key, shape in case['state_dict_keys']:
        if key in case['buffers']:
            state_dict[key] = case['buffers'][key]
            continue
        value = torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode())))
        if len(shape) > 1:
            value = value / math.sqrt(3 * math.prod(shape[1:]))
        elif re.search(r'\.(norm\d|out_conv\.0)\.weight$', key):
            value = 1 + 0.1 * value
        else:
            value = 0.1 * value
        state_dict[key] = value
    return state_dict


@pytest.fixture(scope='module', params=CONFIGS)
def ecdp(request, golden):
    """(golden case, pipeline built from the converted weights and options) per configuration."""
    case = golden[request.param]
    official = {key[len('model.'):]: value for key, value in official_weights(case).items()}
    unet_sd, encoder_sd, options = convert_ecdp_state_dict(official, scale=case['sr_factor'])
    unet, encoder = build_network(dict(options['network_g'])), build_network(dict(options['network_encoder']))
    unet.load_state_dict(unet_sd, strict=True)
    encoder.load_state_dict(encoder_sd, strict=True)
    pipe = SRDiffPipeline.from_networks(encoder.eval(), unet.eval(), case['sr_factor'], options['diffusion'],
                                        device=TEST_DEVICE, precision='fp32')  # SRDIFF_TEST_DEVICE: on a GPU too
    return case, pipe, options


def close(ours, theirs, atol=1e-5, rtol=1e-4):
    error = (ours.double() - theirs.double()).abs().max().item()
    assert torch.allclose(ours.double(), theirs.double(), atol=atol, rtol=rtol), f'max difference {error:.3g}'


def test_every_official_key_converts_and_the_parameter_counts_are_ecdps(ecdp):
    case, pipe, options = ecdp
    assert sum(p.numel() for p in pipe.unet.parameters()) == case['num_params']['unet']
    encoder_used = sum(p.numel() for name, p in pipe.encoder.named_parameters() if name.startswith(('conv_first',
                                                                                                     'body.')))
    assert encoder_used == case['num_params']['lr_feats']
    assert options['network_g']['feature_blocks'] == case['options']['model']['rrdb_block_selection']


def test_a_checkpoint_with_unknown_keys_or_another_schedule_is_refused(golden):
    case = golden['celeba']
    official = {key[len('model.'):]: value for key, value in official_weights(case).items()}
    with pytest.raises(ValueError, match=r"unexpected keys in the ECDP checkpoint: \['extra.weight'\]"):
        convert_ecdp_state_dict({**official, 'extra.weight': torch.zeros(1)}, scale=8)
    with pytest.raises(ValueError, match="not ECDP's VP schedule"):
        convert_ecdp_state_dict({**official, 'diffusion.alpha_bars': official['diffusion.alpha_bars'] ** 2}, scale=8)


def features(pipe, lr):
    maps = pipe.encoder.features(lr)
    return torch.cat([maps[b] for b in pipe.unet.feature_blocks], dim=1)


@torch.no_grad()
def test_rrdb_features_residual_base_and_condition_at_every_level(ecdp):
    case, pipe, _ = ecdp
    close(features(pipe, case['lr']), case['lr_feats'])
    close(pipe.space.reference(case['lr']), case['cond_scaled'], atol=1e-6)
    cond = pipe.unet.project_condition(pipe.encoder.features(case['lr']), None)
    for size, expected in case['unet_extra_feats_resized'].items():
        h, w = map(int, size.split('x'))
        close(pipe.unet.resize_condition(cond, (h, w)), expected)


@torch.no_grad()
def test_the_unet_at_the_recorded_times(ecdp):
    case, pipe, _ = ecdp
    cond = pipe.unet.project_condition(pipe.encoder.features(case['lr']), None)
    for name, expected in case['unet_out'].items():
        kind, *times = name.split('_')
        times = [float(t) for t in times]
        t = torch.tensor(times * (2 // len(times)), dtype=torch.float32 if kind != 'long' else torch.int64,
                         device=TEST_DEVICE)
        close(pipe.unet(case['unet_xt'], t, cond), expected, atol=2e-5)


@torch.no_grad()
def test_odd_sizes_and_torchvisions_old_resize_default(golden):
    """LR 7x5 (every level's size rounds) and the condition resized without antialias (torchvision <= 0.16)."""
    case = golden['df2k']
    official = {key[len('model.'):]: value for key, value in official_weights(case).items()}
    unet_sd, encoder_sd, options = convert_ecdp_state_dict(official, scale=4)
    encoder = build_network(dict(options['network_encoder']))
    encoder.load_state_dict(encoder_sd)
    for antialias, lr, xt, expected in [
            (True, case['odd']['lr'], case['odd']['unet_xt'], case['odd']['unet_out_float_150.0']),
            (False, case['lr'], case['unet_xt'], case['antialias_false']['unet_out_float_150.0'])]:
        unet = build_network(dict(options['network_g'], condition_antialias=antialias))
        unet.load_state_dict(unet_sd)
        cond = unet.project_condition(encoder.features(lr), None)
        close(unet(xt, torch.full((xt.shape[0], ), 150.0), cond), expected, atol=2e-5)
    close(torch.nn.functional.interpolate(case['lr'], scale_factor=4, mode='bicubic', antialias=False),
          case['cond_scaled_antialias_false'], atol=1e-6)


def denoiser_of(pipe, lr, calls=None):
    """ECDP's denoiser at steps t (network time t + 1), recording (x_t, network time) in ``calls``."""
    cond = pipe.unet.project_condition(pipe.encoder.features(lr), None)

    def network(x, t):
        time = pipe.schedule.network_time(t)
        if calls is not None:
            calls.append((x.clone(), time.clone()))
        return pipe.unet(x, time, cond)
    return Denoiser(network, pipe.schedule, 'hybrid', clip_x0=False)


def sample_from(pipe, lr, sampler, x, t_start=None, noises=None, calls=None):
    opt = sampler_options(sampler, pipe.schedule.num_timesteps)
    return run_sampler(opt, denoiser_of(pipe, lr, calls), pipe.schedule, x, noise_source(noises=noises), t_start)


ANCESTRAL = {'type': 'ddpm', 'variance': 'beta', 'end_step': 5}  # ECDP's


@torch.no_grad()
def test_the_ancestral_chain_steps_as_ecdps(ecdp):
    case, pipe, _ = ecdp
    run, lr = case['ancestral'], case['ancestral']['lr']
    trajectory, noises = run['trajectory'], list(run['noises'])
    assert run['noise_step_index'].tolist() == list(range(299, 4, -1))
    calls = []  # the first steps from x_T, with their noises
    sample_from(pipe, lr, dict(ANCESTRAL, end_step=296), run['xT'], noises=noises, calls=calls)
    for (x, time), step in zip(calls, (299, 298, 297, 296)):
        close(x, trajectory[step]['x_in'])
        assert time.item() == trajectory[step]['net_t'].item()
    calls = []  # the middle, from the recorded state at step 150
    sample_from(pipe, lr, dict(ANCESTRAL, end_step=149), trajectory[150]['x_in'], 150, noises[149:], calls)
    close(calls[1][0], trajectory[149]['x_in'])
    # the end: steps 10 to 5, and the x0 estimate at step 5 is the sample
    x0 = sample_from(pipe, lr, ANCESTRAL, trajectory[10]['x_in'], 10, noises[289:])
    close(x0, run['x_final_scaled_residual'], atol=1e-4)
    close(pipe.space.decode(x0, pipe.space.reference(lr)), run['sr'].clamp(0, 1), atol=2e-5)


@torch.no_grad()
def test_ddim_over_every_step_and_from_an_earlier_start(ecdp):
    case, pipe, _ = ecdp
    run, lr = case['ddim'], case['ddim']['lr']
    lr_up = pipe.space.reference(lr)
    x0 = sample_from(pipe, lr, {'type': 'ddim', 'steps': 11}, run['trajectory'][10]['x_in'], 10)
    close(pipe.space.decode(x0, lr_up), run['sr'].clamp(0, 1), atol=2e-5)
    short, calls = case['ddim_gen_steps_10'], []
    x0 = sample_from(pipe, lr, {'type': 'ddim', 'steps': 10}, short['xT'], 9, calls=calls)
    assert [time.item() for _, time in calls] == short['net_t'].tolist()
    for (x, _), expected in zip(calls, short['x_in']):
        close(x, expected, atol=1e-4)
    close(pipe.space.decode(x0, lr_up), short['sr'].clamp(0, 1), atol=2e-5)


@torch.no_grad()
def test_the_probability_flow_ode_evaluates_where_ecdps_does(ecdp):
    case, pipe, _ = ecdp
    run = case['ode_b1']
    calls = []
    x = sample_from(pipe, run['lr'], {'type': 'ode_vp'}, run['xT'], calls=calls)
    assert len(calls) == run['nfe']  # the same steps accepted and rejected
    # float32 round-off in the velocity moves the adaptive steps within the solver's tolerance (rtol 1e-3)
    close(torch.stack([time[0] for _, time in calls]), run['eval_t'], atol=1e-3, rtol=1e-3)
    close(pipe.space.decode(x, pipe.space.reference(run['lr'])), run['sr'].clamp(0, 1), atol=1e-3)


def test_the_vp_schedule_is_ecdps_buffers(golden):
    for name in CONFIGS:
        buffers = golden[name]['buffers']
        schedule = DiscreteSchedule.from_options(**schedule_options({'schedule': 'vp', 'timesteps': 300,
                                                                    'beta_min': 0.1, 'beta_max': 20.0,
                                                                    't_max': 300.0}))
        close(schedule.alphas_cumprod, buffers['model.diffusion.alpha_bars'], atol=1e-7)
        close(schedule.betas, buffers['model.diffusion.betas'], atol=1e-7)


def test_the_training_loss_and_its_gradients_with_the_recorded_draws(golden, tmp_path, monkeypatch):
    """SRDiffModel's training step with ECDP's options (train.pixel_opt MSELoss x C*H*W per head: ECDP's sum over
    the pixels, mean over the batch), the recorded t and eps: the loss and the gradients of ECDP's code."""
    from basicsr.models import build_model

    from srdiff_basicsr.conversion.ecdp import rename_ecdp_key
    case = golden['celeba']
    official = {key[len('model.'):]: value for key, value in official_weights(case).items()}
    unet_sd, encoder_sd, options = convert_ecdp_state_dict(official, scale=8)
    torch.save({'params': unet_sd}, tmp_path / 'unet.pth')
    torch.save({'params': encoder_sd}, tmp_path / 'encoder.pth')
    for folder in ('models', 'states'):
        (tmp_path / folder).mkdir()
    recorded = case['loss_train']
    opt = dict(name='ecdp_loss', model_type='SRDiffModel', scale=8, num_gpu=0, is_train=True, dist=False, rank=0,
               world_size=1, **options,
               path=dict(pretrain_network_g=str(tmp_path / 'unet.pth'), strict_load_g=True,
                         pretrain_network_encoder=str(tmp_path / 'encoder.pth'), models=str(tmp_path / 'models'),
                         training_states=str(tmp_path / 'states'), results_root=str(tmp_path)),
               train=dict(optim_g={'type': 'Adam', 'lr': 1e-4}, optim_encoder={'type': 'Adam', 'lr': 1e-5},
                          encoder_losses={}, scheduler={'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                          total_iter=10, warmup_iter=-1, head_weights={'eps': 1.0, 'x0': 1.0},
                          pixel_opt={'type': 'MSELoss', 'loss_weight': 3 * 32 * 32}, precision='fp32'),
               logger={'print_freq': 1})
    model = build_model(opt)
    model.feed_data({'lq': case['lr'], 'gt': case['hr']})
    close(model.pipeline.space.encode(model.gt, model.lr_up), recorded['x0_scaled_residual'], atol=1e-5)
    schedule = model.pipeline.schedule
    monkeypatch.setattr(schedule, 'training_steps', lambda batch, device: recorded['ts'].double() - 1)
    monkeypatch.setattr(torch, 'randn_like', lambda like: recorded['eps'].clone())
    model.optimize_parameters(1)
    monkeypatch.undo()
    loss = model.log_dict['l_noise_eps'] + model.log_dict['l_noise_x0']
    assert loss == pytest.approx(recorded['loss_mean'].item(), rel=1e-5)
    close(schedule.q_sample(recorded['x0_scaled_residual'], recorded['ts'].double() - 1, recorded['eps']),
          recorded['xt'], atol=1e-5)
    grads = case['loss_train_backward']
    assert grads['loss_mean'].item() == pytest.approx(recorded['loss_mean'].item())
    networks = {'network_g': model.net_g, 'network_encoder': model.net_encoder}
    for key, expected in grads['grads'].items():
        section, ours = rename_ecdp_key(key[len('model.'):])
        param = dict(networks[section].named_parameters())[ours]
        close(param.grad, expected, atol=1e-4, rtol=1e-3)


def test_the_converter_script_writes_a_folder_the_pipeline_samples_as_ecdp(golden, tmp_path, monkeypatch, capsys):
    import sys

    script = load_script('convert_ecdp_checkpoint.py')

    def convert(*args):
        monkeypatch.setattr(sys, 'argv', ['convert_ecdp_checkpoint.py', *map(str, args)])
        try:
            script.main()
        except SystemExit as exit_info:
            return exit_info.code, capsys.readouterr().err
        return 0, capsys.readouterr().err

    case = golden['celeba']
    torch.save({'model': {'model.diffusion.network.in_conv.network.bias': torch.zeros(64)},
                'model_avg': official_weights(case), 'optimizer': {}}, tmp_path / 'ecdp.pt')  # model_avg: the EMA
    code, err = convert(tmp_path / 'ecdp.pt', '--scale', '8', '--out', tmp_path / 'out')
    assert code == 0, err
    pipe = SRDiffPipeline.from_pretrained(str(tmp_path / 'out'), precision='fp32')
    assert pipe.space.lr_up == 'bicubic_antialias' and pipe.parametrization == 'hybrid' and not pipe.clip_x0
    with torch.no_grad():
        cond = pipe.unet.project_condition(pipe.encoder.features(case['lr']), None)
        close(pipe.unet(case['unet_xt'], torch.full((2, ), 150.0), cond), case['unet_out']['float_150.0'], atol=2e-5)
    code, err = convert(tmp_path / 'ecdp.pt', '--scale', '8', '--out', tmp_path / 'out')
    assert code == 2 and 'already in' in err and '--force' in err
    torch.save({'model_avg': {'model.diffusion.network.in_conv.network.bias': torch.zeros(64),
                              'model.extra.weight': torch.zeros(1)}}, tmp_path / 'bad.pt')
    code, err = convert(tmp_path / 'bad.pt', '--scale', '8', '--out', tmp_path / 'o2')
    assert code == 2 and err.strip() == "error: unexpected keys in the ECDP checkpoint: ['extra.weight']"
