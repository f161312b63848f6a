"""The StableSR golden data read to its last key: the t=999 start of the tiled script, the VAE's intermediates, each
step's log variance and logged latents, the colour fixes' intermediates, the spacings, the parameter counts; and
every key of the file either read by a test or listed in ``UNREAD`` with why (names read anywhere in tests/,
f-string keys included)."""
import ast
import re
from pathlib import Path

import pytest
import torch

from srdiff_basicsr.conversion.stablesr import SCHEDULE_BUFFERS
from srdiff_basicsr.diffusion.samplers import make_plan
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.diffusion.space import VAELatentSpace
from srdiff_basicsr.ops.colour import adain, wavelet_blur, wavelet_low
from tests.test_stablesr_sampling import chain

# keys no test reads, and why
UNREAD = {
    'README': 'the description of the file, for people',
    'provenance': 'where the data came from (versions, the hashes of the official files), for people',
    'note': "each case's description, for people",
    'steps_count': 'len(steps), which the chains compare step by step',
    'torch_seed_before': "the official's global seed before its draws: the tests replay the recorded draws, as our "
                         "generator's order is ours by design",
    'torch_seed_before_sample': 'as torch_seed_before',
    'keys': "a_structcond's sorted output keys, compared through the output dict itself",
    'batch_size_sample': 'tiles per U-Net call (1); a batch changes no number (the tile batch is tested on its own)',
}


@pytest.fixture(scope='module')
def schedule():
    return DiscreteSchedule.from_options('scaled_linear')


def test_the_tiled_scripts_start_is_the_lr_latent_noised_to_step_999_with_the_1000_step_tables(stablesr_golden,
                                                                                              schedule):
    run = stablesr_golden['d_sample_canvas']
    last = torch.full((1, ), schedule.num_timesteps - 1)
    x_T = schedule.q_sample(run['struct_cond_latent'], last, run['q_sample_noise'])
    assert torch.allclose(x_T, run['x_T'], rtol=0, atol=1e-6)
    for steps in (4, 200):  # the tables q_sample_respace reads: copied before respacing, the 1000-step ones
        # (the official recomputes them in float32 from the float32 alphas_cumprod: float32 round-off of 1 - a)
        tables = stablesr_golden['d_schedule'][f'respaced_{steps}']
        assert torch.allclose(schedule.sqrt_alphas_cumprod, tables['q_sample_sqrt_alphas_cumprod'], rtol=0, atol=1e-6)
        assert torch.allclose(schedule.sqrt_one_minus_alphas_cumprod,
                              tables['q_sample_sqrt_one_minus_alphas_cumprod'], rtol=0, atol=1e-6)


def test_the_vaes_intermediates_are_the_officials(stablesr_golden, stablesr_nets):
    data, vae = stablesr_golden['c_vae'], stablesr_nets[2]
    with torch.no_grad():
        (mean, logvar), _ = vae.encode(data['image'])
        assert torch.allclose(torch.cat([mean, logvar], 1), data['moments'], rtol=0, atol=2e-5)
        assert torch.allclose(vae.quant_conv(data['encoder_out_h']), data['moments'], rtol=0, atol=2e-5)
        assert torch.allclose(torch.exp(0.5 * logvar), data['posterior_std'], rtol=0, atol=2e-5)
        assert torch.allclose(vae.post_quant_conv(data['z_for_decode']), data['post_quant_conv_out'], rtol=0, atol=2e-5)
        assert torch.allclose(vae.decode(data['z_for_decode'], None), data['decode_plain_AutoencoderKL'], rtol=0,
                              atol=2e-5)
        for level, io in data['fusion_layer_io_w0p5'].items():  # fusion_layer_1, _2 are our fusion.0, .1
            fuse = vae.fusion[int(level[-1]) - 1]
            assert torch.allclose(fuse(io['enc_feat'], io['dec_feat'], io['w']), io['out'], rtol=0, atol=2e-5), level


@pytest.mark.parametrize('case', ['d_sample_old', 'd_sample_canvas', 'f_pipeline_old'])
def test_every_steps_log_variance_is_the_respaced_posteriors(stablesr_golden, schedule, case):
    steps = stablesr_golden[case]['steps']
    respaced = schedule.respaced(make_plan({'type': 'ddpm_spaced', 'steps': len(steps)}, 1000).flip(0))
    for step in steps:
        expected = respaced.posterior_log_variance_clipped[step['t']].reshape(1, 1, 1, 1)
        assert torch.allclose(step['logvar'], expected, rtol=1e-6, atol=0), step['t']


def test_the_logged_latents_are_the_chains_x_T_after_its_first_step_and_its_sample(stablesr_golden, stablesr_nets,
                                                                                   schedule):
    run = dict(stablesr_golden['d_sample_old'])
    run['noises'] = [step['noise'] for step in run['steps']]
    sample, calls = chain(stablesr_nets, schedule, run, 4)
    first, after_first, last = run['intermediates']  # LDM's log: x_T, then after the steps i = N - 1 and i = 0
    assert torch.equal(calls[0][0], run['x_T']) and torch.equal(first, run['x_T'])
    assert torch.allclose(calls[1][0], after_first, rtol=0, atol=1e-4)
    assert torch.allclose(sample, last, rtol=0, atol=1e-4)
    canvas = stablesr_golden['d_sample_canvas']
    assert torch.equal(canvas['intermediates'][0], canvas['x_T'])
    assert torch.allclose(canvas['intermediates'][-1], canvas['samples'], rtol=0, atol=1e-6)
    assert torch.allclose(canvas['intermediates'][1], canvas['steps'][1]['x_in'], rtol=0, atol=1e-6)


def test_the_colour_fixes_intermediates_are_the_officials(stablesr_golden):
    data = stablesr_golden['e_colorfix']
    content, style = data['content'], data['style']
    assert torch.allclose(wavelet_blur(content, 1), data['wavelet_blur_r1'], rtol=0, atol=1e-6)
    assert torch.allclose(wavelet_blur(content, 8), data['wavelet_blur_r8'], rtol=0, atol=1e-6)
    assert torch.allclose(wavelet_low(content), data['content_low'], rtol=0, atol=1e-6)
    assert torch.allclose(content - wavelet_low(content), data['content_high'], rtol=0, atol=1e-6)
    assert torch.allclose(adain(content, style), data['adain_ddpm_copy'], rtol=0, atol=1e-6)  # ddpm.py's copy


def test_the_old_scripts_decode_before_its_clamp(stablesr_golden, stablesr_nets):
    run, vae = stablesr_golden['f_pipeline_old'], stablesr_nets[2]
    space = VAELatentSpace(vae, 4, fidelity=run['dec_w'])
    with torch.no_grad():
        reference = space.reference((run['lr_image'] + 1) / 2, noise=lambda shape: run['latent_eps'])
        (_, logvar), _ = vae.encode(reference.lr_up * 2 - 1)
        assert torch.allclose(torch.exp(0.5 * logvar), run['posterior_std'], rtol=0, atol=2e-5)
        decoded = space.decode(run['samples'], reference, clamp=False) * 2 - 1
    assert torch.allclose(decoded, run['decoded'], rtol=0, atol=1e-4)


def test_spacings_schedule_buffers_and_parameter_counts(stablesr_golden, stablesr_nets, schedule):
    recorded = stablesr_golden['d_schedule']
    for steps in (4, 200):
        plan = make_plan({'type': 'ddpm_spaced', 'steps': steps}, 1000)
        assert sorted(plan.tolist()) == recorded[f'space_timesteps_{steps}']
    ddim = make_plan({'type': 'ddim', 'steps': 50, 'spacing': 'leading'}, 1000)  # the DDIM script's (768v)
    assert sorted(ddim.tolist()) == recorded['space_timesteps_ddim50']
    assert (recorded['linear_start'], recorded['linear_end']) == (0.00085, 0.012)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64)**2
    assert torch.allclose(betas, recorded['betas_float64'], rtol=1e-12, atol=0)
    # ours are the buffers after the official __init__ (its float32 respacing at 1000 steps), not these float64
    # betas: they differ by up to 7e-5 relative (the precision trap of stablesr.md)
    assert not torch.allclose(schedule.betas.double(), recorded['betas_float64'], rtol=1e-5, atol=0)
    assert torch.equal(schedule.betas, recorded['model_buffers_after_init']['betas'])
    assert list(SCHEDULE_BUFFERS) == stablesr_golden['ldm_buffer_keys']
    unet, encoder, vae = stablesr_nets
    counts = stablesr_golden['param_counts']
    assert sum(p.numel() for n, p in unet.named_parameters() if 'spade' in n) == counts['unet_spade']
    assert sum(p.numel() for p in encoder.parameters()) == counts['structcond']
    assert sum(p.numel() for n, p in vae.named_parameters() if n.startswith('fusion.')) == counts['cfw_fusion']


def read_names():
    """(names, patterns): every string constant of the tests' code (but UNREAD's), and every f-string as a regex."""
    names, patterns = set(), []
    for path in Path(__file__).parent.glob('*.py'):
        tree = ast.parse(path.read_text())
        listed = {id(node) for assign in ast.walk(tree) if isinstance(assign, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == 'UNREAD' for t in assign.targets)
                  for node in ast.walk(assign.value)}
        for node in ast.walk(tree):
            if id(node) in listed:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else '.+' for v in node.values]
                patterns.append(re.compile(''.join(parts)))
    return names, patterns


def leaf_names(tree, path=()):
    """(path, name) of every key whose value a test would compare: dicts of width- or weight-named entries and
    lists of per-step dicts go down into their entries' keys."""
    for key, value in tree.items():
        if isinstance(value, dict) and key != 'state_dicts' and key != 'configs':
            yield path + (key, ), key
            yield from leaf_names(value, path + (key, ))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            yield path + (key, ), key
            for entry in value:
                yield from leaf_names(entry, path + (key, '[]'))
        else:
            yield path + (key, ), key


def test_every_key_of_the_golden_data_is_read_or_listed_as_unread(stablesr_golden):
    names, patterns = read_names()
    missing, listed = set(), set()
    for path, name in leaf_names(stablesr_golden):
        if path[0] in UNREAD or name in UNREAD:
            listed.add(path[0] if path[0] in UNREAD else name)
        elif not re.fullmatch(r'[\d.]+', name) and name not in names and not any(p.fullmatch(name) for p in patterns):
            missing.add('.'.join(path))
    assert not missing, f'golden keys no test reads (read them, or list them in UNREAD with why): {sorted(missing)}'
    assert listed == set(UNREAD), f'UNREAD names keys the file does not have: {sorted(set(UNREAD) - listed)}'
