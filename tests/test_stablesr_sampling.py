"""StableSR's schedule, respacing, DDPM chains and end-to-end run against the official code's recorded runs
(``stablesr_official_tiny.pt``): the family's schedule, sampler table and pipeline, given StableSR's networks, its
latent space (``VAELatentSpace``) and its per-step condition (``TimeAwareCondition``).

Tolerances: the schedule tables agree to 1 float32 ulp (float64 arithmetic rounded to float32, where a float64
``log`` or ``sqrt`` of another CPU's libm may round otherwise in the last bit, which can move the float32 by one);
the float64 tile weights to 4 float64 ulps (an ``exp`` and three products); a chain's latents agree to float32
round-off of the networks, 1e-4 absolute after 4 steps and 2e-3 after 200 (latents of magnitude ~3). Steps are
integers, compared exactly.
"""
import pytest
import torch

from srdiff_basicsr.diffusion.condition import TimeAwareCondition, conditioned_network, timed_network
from srdiff_basicsr.diffusion.noise import noise_source
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.samplers import make_plan, run_sampler
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.diffusion.space import VAELatentSpace
from srdiff_basicsr.diffusion.tiling import TiledNetwork, gaussian_weight, stablesr_weight, tiled_map
from srdiff_basicsr.ops.colour import colour_fix
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import assert_within_ulps


@pytest.fixture(scope='module')
def schedule():
    return DiscreteSchedule.from_options('scaled_linear')


def test_scaled_linear_schedule_has_the_official_tables_after_init(stablesr_golden, schedule):
    recorded = stablesr_golden['d_schedule']
    assert schedule.num_timesteps == 1000
    for name, table in recorded['model_buffers_after_init'].items():
        if hasattr(schedule, name):
            assert_within_ulps(getattr(schedule, name), table, 1, name)
    assert torch.allclose(schedule.alphas_cumprod.double(), recorded['alphas_cumprod_float64'], rtol=1e-6, atol=0)


@pytest.mark.parametrize('steps', [4, 200])
def test_respacing_visits_the_official_steps_with_the_official_tables(stablesr_golden, schedule, steps):
    recorded = stablesr_golden['d_schedule'][f'respaced_{steps}']
    plan = make_plan({'type': 'ddpm_spaced', 'steps': steps}, 1000)
    assert plan.flip(0).tolist() == recorded['use_timesteps'] == recorded['timestep_map']
    respaced = schedule.respaced(plan.flip(0))
    assert_within_ulps(respaced.betas, recorded['new_betas_float32'], 1, 'betas')
    for name, table in recorded['schedule_respaced'].items():
        if hasattr(respaced, name):
            assert_within_ulps(getattr(respaced, name), table, 1, name)


def chain(stablesr_nets, schedule, run, steps):
    """Our ddpm_spaced run of a recorded chain: x_T, the context, the LR latent and every noise of the official
    run; returns the sample and the (x, t) each network call was given."""
    unet, encoder, _ = stablesr_nets
    calls = []

    def network(x, t):
        calls.append((x.clone(), t.clone()))
        return unet(x, t, (run['cond'], encoder(run['struct_cond_latent'], t)))

    denoiser = Denoiser(network, schedule, 'eps', clip_x0=False)
    with torch.no_grad():
        sample = run_sampler({'type': 'ddpm_spaced', 'steps': steps}, denoiser, schedule, run['x_T'],
                             noise_source(noises=run['noises']))
    return sample, calls


def test_four_step_chain_matches_the_official_at_every_step(stablesr_golden, stablesr_nets, schedule):
    run = dict(stablesr_golden['d_sample_old'])
    run['noises'] = [step['noise'] for step in run['steps']]
    sample, calls = chain(stablesr_nets, schedule, run, 4)
    assert len(calls) == 4
    for (x, t), step in zip(calls, run['steps'], strict=True):
        assert torch.equal(t, step['t_replace'])  # the original timestep goes to the U-Net and the encoder
        assert torch.allclose(x, step['x_in'], rtol=0, atol=1e-4)
    assert torch.allclose(sample, run['samples'], rtol=0, atol=1e-4)


def test_two_hundred_step_chain_matches_the_official(stablesr_golden, stablesr_nets, schedule):
    run = dict(stablesr_golden['d_sample_long'])
    run['noises'] = list(run['noises'])
    sample, calls = chain(stablesr_nets, schedule, run, 200)
    assert [int(t) for _, t in calls] == run['t_replace'].flatten().tolist()
    for k in (1, 50, 199):  # the latent after step k - 1 is the input of step k
        assert torch.allclose(calls[k][0], run['x_out'][k - 1], rtol=0, atol=2e-3), k
    assert torch.allclose(sample, run['samples'], rtol=0, atol=2e-3)


def test_the_official_old_script_end_to_end_through_our_space_and_condition(stablesr_golden, stablesr_nets, schedule):
    """sr_val_ddpm_text_T_vqganfin_old.py's flow (golden ``f_pipeline_old``): LR -> upsampled image -> posterior
    sample -> 4 respaced DDPM steps with the time-aware condition -> CFW decode at w 0.5 -> colour fixes."""
    run, (unet, encoder, vae) = stablesr_golden['f_pipeline_old'], stablesr_nets
    space = VAELatentSpace(vae, 4, fidelity=run['dec_w'])
    lr = (run['lr_image'] + 1) / 2
    with torch.no_grad():
        reference = space.reference(lr, noise=lambda shape: run['latent_eps'])
        assert torch.allclose(reference.lr_up * 2 - 1, run['init_image'], rtol=0, atol=1e-6)
        assert torch.allclose(reference.latent, run['init_latent'], rtol=0, atol=1e-5)
        for ours, theirs in zip(reference.features, run['enc_fea_lq'], strict=True):
            assert torch.allclose(ours, theirs, rtol=0, atol=2e-5)
        condition = TimeAwareCondition.of_lr(encoder, unet, lr, reference, 4)
        denoiser = Denoiser(conditioned_network(timed_network(unet, schedule), condition), schedule, 'eps',
                            clip_x0=False)
        x0 = run_sampler({'type': 'ddpm_spaced', 'steps': 4}, denoiser, schedule, run['x_T'],
                         noise_source(noises=[step['noise'] for step in run['steps']]))
        assert torch.allclose(x0, run['samples'], rtol=0, atol=1e-4)
        sr = space.decode(x0, reference, clamp=False)
    assert torch.allclose(sr.clamp(0, 1), run['out_nofix'], rtol=0, atol=1e-4)
    for method in ('adain', 'wavelet'):  # on the unclamped decode, as the script
        fixed = colour_fix(sr, space.colour_reference(reference), method)
        assert torch.allclose(fixed, run[f'out_{method}'], rtol=0, atol=1e-4), method


def test_the_pipeline_samples_stablesr_with_the_seeded_draws_in_order(stablesr_nets, schedule):
    """SRDiffPipeline on the latent space and the per-step condition, no StableSR code in it: its output from a
    seed equals the chain composed here from the same generator's draws (posterior noise, x_T, the steps')."""
    unet, encoder, vae = stablesr_nets
    space = VAELatentSpace(vae, 4)
    pipe = SRDiffPipeline(encoder, unet, schedule, 4, space=space, condition=TimeAwareCondition,
                          sampler={'type': 'ddpm_spaced', 'steps': 3}, precision='fp32')
    torch.manual_seed(3)
    lr = torch.rand(1, 3, 16, 20)
    sr = pipe(lr, seed=7)
    assert sr.shape == (1, 3, 64, 80) and pipe.nfe == 3
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        reference = space.reference(lr, noise=lambda shape: torch.randn(shape, generator=generator))
        x_T = torch.randn(space.shape(reference), generator=generator)
        denoiser = Denoiser(conditioned_network(timed_network(unet, schedule), pipe.condition(lr, reference)),
                            schedule, 'eps', clip_x0=False)
        x0 = run_sampler({'type': 'ddpm_spaced', 'steps': 3}, denoiser, schedule, x_T,
                         noise_source(generator))
        expected = space.decode(x0, reference)
    assert torch.equal(sr, expected)
    assert not torch.equal(pipe(lr, seed=8), sr)


def test_the_canvas_run_blends_the_official_tiles_with_its_weights(stablesr_golden, stablesr_nets, schedule):
    """StableSR's sample_canvas (golden ``d_sample_canvas``: a 12x16 latent, 8x8 tiles overlapping by 4, 6 tiles,
    4 respaced steps): the same tile boxes, each tile's encoder and U-Net call, its Gaussian weights, the samples."""
    run, (unet, encoder, _) = stablesr_golden['d_sample_canvas'], stablesr_nets
    assert_within_ulps(stablesr_weight(8, 8, 'cpu', torch.float64), run['tile_weights'][0, 0], 4, 'tile weights')
    assert not torch.allclose(gaussian_weight(8, 8, 'cpu', torch.float64), run['tile_weights'][0, 0])
    calls = []

    def network(x, t, cond):
        eps = unet(x, t, cond)
        calls.append((x.clone(), t.clone(), eps))
        return eps

    condition = TimeAwareCondition(encoder, run['struct_cond_latent'], run['cond'])
    tiled = TiledNetwork(network, condition, 12, 16, 1, run['tile_size'], run['tile_overlap'], unet.divisor,
                         weights='stablesr')
    assert sorted(box[:2] for box in tiled.boxes) == [(0, 0), (0, 4), (0, 8), (4, 0), (4, 4), (4, 8)]
    denoiser = Denoiser(lambda x, t: tiled(x, t), schedule, 'eps', clip_x0=False)
    with torch.no_grad():
        x0 = run_sampler({'type': 'ddpm_spaced', 'steps': 4}, denoiser, schedule, run['x_T'],
                         noise_source(noises=[step['noise'] for step in run['steps']]))
    assert len(calls) == len(run['tile_calls']) == 24
    for k in range(0, 24, 6):  # per step, the official calls column by column, ours row by row: match by input
        ours = sorted(calls[k:k + 6], key=lambda c: c[0].sum().item())
        theirs = sorted(run['tile_calls'][k:k + 6], key=lambda c: c['x'].sum().item())
        for (x, t, eps), official in zip(ours, theirs):
            assert torch.equal(t, official['t']) and torch.allclose(x, official['x'], rtol=0, atol=1e-4)
            assert torch.allclose(eps, official['eps'], rtol=0, atol=1e-4)
    assert torch.allclose(x0, run['samples'], rtol=0, atol=1e-4)


def test_pipeline_tiles_on_the_latent_canvas(stablesr_nets, schedule):
    """--tile for StableSR: tiles in output pixels become latent tiles (/8); one tile over the whole canvas is the
    whole-image run; smaller ones run the encoder and U-Net per tile and step."""
    unet, encoder, vae = stablesr_nets
    pipe = SRDiffPipeline(encoder, unet, schedule, 4, space=VAELatentSpace(vae, 4),
                          condition=TimeAwareCondition, sampler={'type': 'ddpm_spaced', 'steps': 2}, precision='fp32')
    lr = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    whole = pipe(lr, seed=0)
    pipe.set_sampling({'type': 'ddpm_spaced', 'steps': 2}, tile={'size': 96, 'overlap': 0})
    assert torch.allclose(pipe(lr, seed=0), whole, atol=1e-5)
    pipe.set_sampling({'type': 'ddpm_spaced', 'steps': 2}, tile={'size': 32, 'overlap': 16, 'batch': 2})
    assert pipe.tile_opt['weights'] == 'stablesr'  # the space's default
    calls = []
    forward = encoder.forward
    encoder.forward = lambda x, t: calls.append(tuple(x.shape[-2:])) or forward(x, t)
    try:
        tiled = pipe(lr, seed=0)
    finally:
        del encoder.forward
    assert tiled.shape == whole.shape and not torch.equal(tiled, whole)
    assert len(calls) == 2 * 3 * 5 and set(calls) == {(4, 4)}  # 8x12 latent: 3 x 5 tiles of 4x4 (stride 2), 2 steps


def test_tiled_map_blends_each_output_at_its_own_scale_into_the_whole_canvas():
    """A local map (pointwise at full size, 2x2 means at half size) run on overlapping tiles is the whole map."""
    x = torch.randn(2, 3, 40, 56, dtype=torch.float64)

    def local(top, left, h, w):
        crop = x[..., top:top + h, left:left + w]
        return [crop * 2 + 1, torch.nn.functional.avg_pool2d(crop, 2)]

    full, half = tiled_map(local, 40, 56, 16, 8, align=2)
    assert torch.allclose(full, x * 2 + 1, atol=1e-12)
    assert torch.allclose(half, torch.nn.functional.avg_pool2d(x, 2), atol=1e-12)


def test_the_vae_on_tiles_is_the_whole_vae_on_one_tile_and_keeps_every_size(stablesr_nets):
    vae = stablesr_nets[2]
    lr = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    whole, tiled, one = (VAELatentSpace(vae, 4, posterior='mean', vae_tile=tile)
                         for tile in (None, {'size': 64, 'overlap': 32}, {'size': 256, 'overlap': 0}))
    with torch.no_grad():
        reference = whole.reference(lr)
        assert torch.allclose(one.reference(lr).latent, reference.latent, atol=1e-6)
        assert torch.allclose(one.decode(reference.latent, reference), whole.decode(reference.latent, reference),
                              atol=1e-6)
        pieces = tiled.reference(lr)
        assert pieces.latent.shape == reference.latent.shape
        assert [f.shape for f in pieces.features] == [f.shape for f in reference.features]
        decoded = tiled.decode(reference.latent, reference)
    assert decoded.shape == (1, 3, 96, 128) and not torch.allclose(decoded, whole.decode(reference.latent, reference))
