"""StableSR's released checkpoints -> a converted folder -> ``from_pretrained`` / ``srdiff-infer``: on the golden
state dicts of the official tiny classes (plus a tiny random OpenCLIP text tower, which the golden data does not
build), and on a meta-device checkpoint with every released key."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from srdiff_basicsr.archs.openclip_text_arch import OpenCLIPTextTower, empty_prompt_embedding
from srdiff_basicsr.conversion.stablesr import RELEASED_CONFIG, convert_stablesr_checkpoints
from srdiff_basicsr.diffusion.noise import Replay
from srdiff_basicsr.errors import WeightsError
from srdiff_basicsr.infer import main
from srdiff_basicsr.inference.stablesr_recipes import run_recipe
from srdiff_basicsr.loading.weights import write_state_dict
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import load_script, make_pairs
from tests.stablesr_fixtures import tiny_config
from tests.test_stablesr_archs import released_keys

SCRIPTS = Path(__file__).resolve().parents[1] / 'scripts'


def tiny_text_tower(seed=0):
    torch.manual_seed(seed)
    tower = OpenCLIPTextTower(49408, 32, 2, 1, 77, 32)
    for p in tower.parameters():
        p.data.normal_(0, 0.3)
    return {f'cond_stage_model.model.{k}': v for k, v in tower.state_dict().items()}


@pytest.fixture(scope='module')
def checkpoints(stablesr_golden):
    """(diffusion checkpoint, CFW checkpoint, the tiny configuration) as StableSR's files hold them."""
    config = {**RELEASED_CONFIG, **tiny_config(stablesr_golden)}
    return {**stablesr_golden['state_dicts']['ldm'], **tiny_text_tower()}, stablesr_golden['state_dicts']['cfw'], config


def test_every_golden_key_converts_and_the_empty_prompt_embedding_is_stored(checkpoints, stablesr_nets):
    diffusion, cfw, config = checkpoints
    converted, options = convert_stablesr_checkpoints(diffusion, cfw, config)
    text = {k[len('cond_stage_model.model.'):]: v for k, v in diffusion.items() if k.startswith('cond_stage_model.')}
    assert torch.equal(converted['g']['empty_context'], empty_prompt_embedding(text))
    for name, net in zip(('g', 'encoder', 'vae'), stablesr_nets):
        expected = net.state_dict()
        assert set(converted[name]) == set(expected), name
        for key, value in expected.items():
            if key != 'empty_context':
                assert torch.equal(converted[name][key], value), (name, key)
    assert options['diffusion']['space'] == 'vae_latent' and options['sampler'] == {'type': 'ddpm_spaced', 'steps': 200}


@pytest.mark.parametrize('change,message', [
    (lambda d, c: d.update({'model.diffusion_model.extra.weight': torch.zeros(1)}),
     r'model.diffusion_model: .*unexpected extra.weight'),
    (lambda d, c: d.update({'model_ema.decay': torch.zeros(1)}),
     r'1 key\(s\) of no StableSR part: model_ema.decay. The official scripts load with strict=False'),
    (lambda d, c: d.pop('model.diffusion_model.out.2.bias'), r'model.diffusion_model: .*missing out.2.bias'),
    (lambda d, c: d.pop('structcond_stage_model.fea_tran.1.skip_connection.bias'),
     r'structcond_stage_model: .*missing fea_tran.1.skip_connection.bias'),
    (lambda d, c: c.pop('decoder.fusion_layer_2.encode_enc_3.conv2.bias'),
     r'CFW checkpoint: .*missing fusion.1.encode_enc_3.conv2.bias'),
    (lambda d, c: c.update({'decoder.up.1.block.0.conv1.weight': torch.zeros(3, 3)}), 'of another shape'),
    (lambda d, c: d.update({'betas': d['betas'] * 1.1}), "its betas is not Stable Diffusion's scaled linear"),
    # every buffer, not only betas: one value of a table the sampler reads
    (lambda d, c: d['posterior_mean_coef2'].__setitem__(500, d['posterior_mean_coef2'][500] * 1.001),
     "its posterior_mean_coef2 is not Stable Diffusion's"),
    (lambda d, c: d.update({'log_one_minus_alphas_cumprod': d['log_one_minus_alphas_cumprod'] + 1e-3}),
     'its log_one_minus_alphas_cumprod is not'),
    (lambda d, c: d.update({'first_stage_model.encoder.conv_in.weight': d['first_stage_model.encoder.conv_in.weight']
                            + 1e-3}),
     r"first_stage_model and the CFW checkpoint's VAE encoder differ \(encoder.conv_in.weight\)"),
    (lambda d, c: d.update({'first_stage_model.quant_conv.bias': d['first_stage_model.quant_conv.bias'] + 1e-3}),
     r'differ \(quant_conv.bias\)'),
    (lambda d, c: [d.pop(k) for k in [k for k in d if k.startswith('cond_stage_model.')]], 'no cond_stage_model'),
])
def test_a_checkpoint_that_is_not_the_configuration_is_refused_by_name(checkpoints, change, message):
    diffusion, cfw, config = checkpoints
    diffusion, cfw = {k: v.clone() for k, v in diffusion.items()}, dict(cfw)
    change(diffusion, cfw)
    with pytest.raises(WeightsError, match=message):
        convert_stablesr_checkpoints(diffusion, cfw, config)


def test_the_released_layout_converts_on_the_meta_device():
    """Every key of stablesr_000117.ckpt and vqgan_cfw_00011.ckpt (shapes only) plus ViT-H-14's text tower."""
    diffusion, cfw = released_keys()
    with torch.device('meta'):
        text = {f'cond_stage_model.model.{k}': v for k, v in OpenCLIPTextTower().state_dict().items()}
        fake = {k: torch.empty(shape) for k, shape in diffusion.items() if k != 'betas'}  # the buffers: no values
        converted, options = convert_stablesr_checkpoints({**fake, **text}, {k: torch.empty(s) for k, s in cfw.items()})
    assert converted['g']['empty_context'].shape == (1, 77, 1024)
    assert sum(v.numel() for v in converted['vae'].values()) == 128_047_591


def test_the_script_writes_a_folder_that_samples_the_official_old_scripts_image(checkpoints, stablesr_golden,
                                                                               tmp_path, monkeypatch, capsys):
    """convert (with the official tiny configurations) -> SRDiffPipeline.from_pretrained (what srdiff-infer --model
    runs) -> the golden f_pipeline_old image from the official run's own draws (its posterior noise, x_T and step
    noises, replayed). The golden run's text context is a random stand-in (the official code's text tower was not
    built), so it replaces the converted empty-prompt embedding here."""
    diffusion, cfw, _ = checkpoints
    torch.save({'state_dict': diffusion}, tmp_path / 'stablesr.ckpt')
    torch.save({'state_dict': cfw}, tmp_path / 'cfw.ckpt')
    for name in ('ldm', 'cfw'):
        (tmp_path / f'{name}.yaml').write_text(yaml.safe_dump({'model': stablesr_golden['configs'][name]}))
    out = tmp_path / 'converted'
    done = subprocess.run([sys.executable, str(SCRIPTS / 'convert_stablesr_checkpoint.py'),
                           str(tmp_path / 'stablesr.ckpt'), str(tmp_path / 'cfw.ckpt'), '--config', str(tmp_path / 'ldm.yaml'), '--cfw-config',
                           str(tmp_path / 'cfw.yaml'), '--out', str(out), '--format', 'safetensors'],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ['model.yml', 'net_encoder_official.safetensors',
                                                     'net_g_official.safetensors', 'net_vae_official.safetensors']
    pipe = SRDiffPipeline.from_pretrained(str(out), precision='fp32')
    assert pipe.sampler_opt == {'type': 'ddpm_spaced', 'steps': 200}  # StableSR's own
    run = stablesr_golden['f_pipeline_old']
    pipe.unet.empty_context.copy_(run['cond'])
    draws = Replay([run['latent_eps'], run['x_T'], *[step['noise'] for step in run['steps'][:3]]])
    lr = (run['lr_image'] + 1) / 2
    assert torch.allclose(pipe(lr, generator=draws, sampler='ddpm_spaced', steps=4), run['out_nofix'], atol=1e-4)
    for method in ('adain', 'wavelet'):
        pipe.set_sampling({'type': 'ddpm_spaced', 'steps': 4}, colour_fix=method)
        draws = Replay([run['latent_eps'], run['x_T'], *[step['noise'] for step in run['steps'][:3]]])
        assert torch.allclose(pipe(lr, generator=draws), run[f'out_{method}'], atol=1e-4), method
    script = load_script('convert_stablesr_checkpoint.py')  # again, in process: nothing overwritten without --force
    monkeypatch.setattr(sys, 'argv', ['convert', str(tmp_path / 'stablesr.ckpt'), str(tmp_path / 'cfw.ckpt'),
                                      '--out', str(out)])
    with pytest.raises(SystemExit) as stopped:
        script.main()
    assert stopped.value.code == 2 and 'already in' in capsys.readouterr().err


def converted_folder(checkpoints, model):
    converted, options = convert_stablesr_checkpoints(*checkpoints)
    model.mkdir()
    for name, state_dict in converted.items():
        write_state_dict(state_dict, str(model / f'net_{name}_official.safetensors'))
    (model / 'network_options.yml').write_text(yaml.safe_dump(options))
    return model


def test_cfw_data_are_generated_from_a_converted_folder(checkpoints, tmp_path, capsys):
    """scripts/generate_cfw_data.py: the official layout, one latent per pair, a bad pair named (exit 2)."""
    model = converted_folder(checkpoints, tmp_path / 'model')
    lr_dir, hr_dir = make_pairs(tmp_path / 'pairs', count=2, hr_size=32)
    script = load_script('generate_cfw_data.py')
    args = [lr_dir, hr_dir, '-o', str(tmp_path / 'cfw'), '--model', str(model), '--steps', '2', '--device', 'cpu']
    assert script.main(args) == 0
    assert sorted(p.name for p in (tmp_path / 'cfw' / 'latents').iterdir()) == ['000.npy', '001.npy']
    assert np.load(tmp_path / 'cfw' / 'latents' / '000.npy').shape == (1, 4, 4, 4)
    cv2.imwrite(os.path.join(hr_dir, '002.png'), np.zeros((30, 30, 3), np.uint8))
    cv2.imwrite(os.path.join(lr_dir, '002.png'), np.zeros((8, 8, 3), np.uint8))
    assert script.main(args) == 2
    assert 'is 30x30 and' in capsys.readouterr().err


def test_srdiff_infer_super_resolves_a_folder_with_a_converted_stablesr(checkpoints, tmp_path, capsys):
    model = converted_folder(checkpoints, tmp_path / 'model')
    images = tmp_path / 'lr'
    images.mkdir()
    cv2.imwrite(str(images / 'a.png'), (np.random.default_rng(0).random((12, 20, 3)) * 255).astype(np.uint8))
    def infer(out, *flags):  # in process (the command's main); one subprocess run below proves the entry point
        return main([str(images), '-o', str(tmp_path / out), '--model', str(model), '--sampler', 'ddpm_spaced',
                     '--steps', '3', '--device', 'cpu', *flags])

    done = subprocess.run([sys.executable, '-m', 'srdiff_basicsr.infer', str(images), '-o', str(tmp_path / 'w0'),
                           '--model', str(model), '--sampler', 'ddpm_spaced', '--steps', '3', '--device', 'cpu',
                           '--fidelity', '0'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert infer('w1', '--fidelity', '1') == 0
    plain, fused = (cv2.imread(str(tmp_path / out / 'a.png')).astype(int) for out in ('w0', 'w1'))
    assert plain.shape == (48, 80, 3) and np.abs(plain - fused).max() > 0  # the same draws, CFW's weight differs
    assert infer('tiled', '--tile', '32', '--tile-overlap', '16', '--fidelity', '0') == 0  # 4x4 latent tiles
    tiled = cv2.imread(str(tmp_path / 'tiled' / 'a.png')).astype(int)
    assert tiled.shape == plain.shape and 0 < np.abs(tiled - plain).mean() < 40  # tiles see less context
    assert infer('vae_tiled', '--vae-tile', '32', '--fidelity', '0') == 0
    assert cv2.imread(str(tmp_path / 'vae_tiled' / 'a.png')).shape == plain.shape
    assert infer('odd', '--tile', '36') == 2
    assert 'tile.size: must be a multiple of 8 (output pixels per latent pixel), got 36' in capsys.readouterr().err
    assert infer('bad', '--fidelity', '1.5') == 2
    assert 'error: --fidelity: must be a number in [0, 1], got 1.5' in capsys.readouterr().err
    assert infer('odd_vae', '--vae-tile', '40') == 2  # its half-overlap, 20, is not whole latent pixels
    assert '--vae-tile: must be a positive multiple of 16 output pixels' in capsys.readouterr().err


def test_srdiff_infer_runs_the_official_scripts_by_recipe(checkpoints, tmp_path, capsys):
    model = converted_folder(checkpoints, tmp_path / 'model')
    images = tmp_path / 'lr'
    images.mkdir()
    pixels = (np.random.default_rng(1).random((12, 20, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(images / 'a.png'), pixels)

    def infer(out, *flags):
        return main([str(images), '-o', str(tmp_path / out), '--model', str(model), '--sampler', 'ddpm_spaced',
                     '--steps', '3', '--device', 'cpu', *flags])

    assert infer('tile', '--recipe', 'tile', '--input-size', '64') == 0
    written = cv2.imread(str(tmp_path / 'tile' / 'a.png'))
    pipe = SRDiffPipeline.from_pretrained(str(model), device='cpu')
    pipe.set_sampling({'type': 'ddpm_spaced', 'steps': 3})
    lr = torch.from_numpy(pixels[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    sr = run_recipe('tile', pipe, lr, lambda: torch.Generator().manual_seed(0), input_size=64)
    expected = (sr[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)  # the script's truncation
    assert written.shape == (48, 96, 3) and np.array_equal(written, expected)
    assert infer('lr_start', '--start', 'lr') == 0  # the tile script's start without its input handling
    start = cv2.imread(str(tmp_path / 'lr_start' / 'a.png'))
    assert start.shape == (48, 80, 3)
    assert infer('old', '--recipe', 'old', '--input-size', '64') == 1  # 12x20: under the old script's 32 px
    assert 'under the 32 px a side the old script resizes to; use --recipe tile' in capsys.readouterr().err
    assert infer('both', '--recipe', 'tile', '--start', 'lr') == 2
    assert '--start: a --recipe starts as its script does' in capsys.readouterr().err

