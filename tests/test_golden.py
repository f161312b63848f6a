"""Equivalence with the official SRDiff implementation (shared/reference/golden): the released x4 and x8
configurations and three with the official code's other U-Net options (use_attn, up_input, use_wn)."""
import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr.archs.srdiff_unet_arch import MidAttention
from srdiff_basicsr.conversion.srdiff import convert_official_state_dict
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from tests.conftest import TEST_DEVICE, load_golden, sample

TOL = 1e-4
CASES = ['x4', 'x8', 'x4_attn', 'x4_up_input', 'x8_attn_up_input_wn']


@pytest.fixture(scope='module')
def cases(golden):
    return {**golden, **load_golden('srdiff_official_variants_tiny.pt')}


def build(case):
    unet_sd, encoder_sd, options = convert_official_state_dict(case['checkpoint']['state_dict']['model'])
    unet, encoder = build_network(options['network_g']), build_network(options['network_encoder'])
    unet.load_state_dict(unet_sd)
    encoder.load_state_dict(encoder_sd)
    return (unet.to(TEST_DEVICE).eval(), encoder.to(TEST_DEVICE).eval(),
            DiscreteSchedule.from_options(**options['diffusion']).to(TEST_DEVICE))


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize('name', CASES)
def test_converted_checkpoint_matches_official_outputs(cases, name):
    case = cases[name]
    config = case['config']
    unet, encoder, diffusion = build(case)
    assert encoder.scale == config['scale']
    assert isinstance(unet.mid_attn, MidAttention) == config.get('use_attn', False)
    assert hasattr(unet, 'up_proj') == config.get('up_input', False)
    lr01 = (case['img_lr'] + 1) / 2  # the official encoder maps [-1, 1] to [0, 1] inside
    with torch.no_grad():
        features = encoder.features(lr01)
        assert len(features) == config['rrdb_num_block'] + 1
        for ours, theirs in zip(features, case['rrdb_features']):
            assert max_diff(ours, theirs) < TOL
        assert max_diff(encoder(lr01) * 2 - 1, case['rrdb_out']) < TOL

        cond = unet.project_condition(features, case['img_lr_up'])
        assert max_diff(unet(case['x_t'], case['t'], cond), case['eps_pred']) < TOL

        x0 = ((case['img_hr'] - case['img_lr_up']) * config['res_rescale']).clamp(-1, 1)
        assert max_diff(x0, case['x0_residual']) < TOL
        x_t = diffusion.q_sample(x0, case['loss_t'], case['loss_noise'])
        loss = (unet(x_t, case['loss_t'], cond) - case['loss_noise']).abs().mean()
        assert abs(loss.item() - case['loss'].item()) < TOL

        x0_preds = []

        def recording(x, t):  # the x0 the sampler gets from this eps, as the official p_sample clamps it
            eps = unet(x, t, cond)
            x0_preds.append(diffusion.predict_x0(x, t, eps).clamp(-1, 1))
            return eps

        x0 = sample('ddpm', recording, diffusion, case['x_T'], noises=case['step_noises'])
        assert len(x0_preds) == config['timesteps']
        assert max_diff(torch.stack(x0_preds), case['sample_x0_preds']) < TOL
        sr = x0.clamp(-1, 1) / config['res_rescale'] + case['img_lr_up']
        assert max_diff(sr, case['sample_sr']) < TOL


@pytest.mark.parametrize('scale', ['x4', 'x8'])
def test_schedule_tables_match_official_buffers(golden, scale):
    official = golden[scale]['checkpoint']['state_dict']['model']
    diffusion = DiscreteSchedule.from_options('cosine', golden[scale]['config']['timesteps'], cosine_s=0.008)
    diffusion.to(TEST_DEVICE)
    for name in ('betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod',
                 'sqrt_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod', 'sqrt_recipm1_alphas_cumprod',
                 'posterior_variance', 'posterior_log_variance_clipped', 'posterior_mean_coef1',
                 'posterior_mean_coef2'):
        assert torch.allclose(getattr(diffusion, name), official[name], rtol=1e-6, atol=1e-7), name


@pytest.mark.parametrize('scale', ['x4', 'x8'])
def test_ddim_with_eta_1_over_all_steps_reproduces_the_official_samples(golden, scale):
    """The closed form DDIM(eta=1, T steps) = ancestral DDPM, checked on the official network and noises."""
    case = golden[scale]
    unet, encoder, diffusion = build(case)
    with torch.no_grad():
        cond = unet.project_condition(encoder.features((case['img_lr'] + 1) / 2), case['img_lr_up'])
    x0 = sample('ddim', lambda x, t: unet(x, t, cond), diffusion, case['x_T'], noises=case['step_noises'],
                steps=case['config']['timesteps'], eta=1.0)
    sr = x0 / case['config']['res_rescale'] + case['img_lr_up']
    assert max_diff(sr, case['sample_sr']) < TOL
