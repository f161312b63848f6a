"""The converter against the full-size official key lists (shared/reference/official_state_dict_keys.txt)."""
import re
import subprocess
import sys

import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr.conversion.srdiff import convert_official_state_dict
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import REFERENCE, REPO


def official_state_dicts():
    """{config name: (state dict of zeros with the official shapes, stated parameter count)}."""
    text = (REFERENCE / 'official_state_dict_keys.txt').read_text()
    result, current = {}, None
    for line in text.splitlines():
        header = re.match(r'## official SRDiff state_dict \((\w+):.* ([\d]+) parameters', line)
        if header:
            current = header.group(1)
            result[current] = ({}, int(header.group(2)))
        elif line.strip() and current:
            key, shape = line.split(' ', 1)
            result[current][0][key] = torch.zeros(eval(shape))
    return result


@pytest.mark.parametrize('config,expected', [
    ('celeba_x8', dict(scale=8, dim=64, dim_mults=[1, 2, 2, 4])),
    ('div2k_x4', dict(scale=4, dim=64, dim_mults=[1, 2, 3, 4])),
])
def test_full_size_official_checkpoints_convert_and_load_strictly(config, expected):
    state_dict, stated_params = official_state_dicts()[config]
    # zeros stand in for the diffusion tables, which the golden tests check: leave them out here
    for key in [k for k in state_dict if not k.startswith(('denoise_fn.', 'rrdb.'))]:
        del state_dict[key]
    unet_sd, encoder_sd, options = convert_official_state_dict(state_dict)
    for key, value in expected.items():
        assert options['network_g'][key] == value
    assert options['network_encoder'] == dict(type='SRDiffRRDBNet', scale=expected['scale'], num_feat=32,
                                              num_block=8, num_grow_ch=16)
    unet, encoder = build_network(options['network_g']), build_network(options['network_encoder'])
    unet.load_state_dict(unet_sd, strict=True)
    encoder.load_state_dict(encoder_sd, strict=True)
    ours = sum(p.numel() for p in unet.parameters()) + sum(p.numel() for p in encoder.parameters())
    assert ours == stated_params  # the stated count leaves the tables out
    if config == 'celeba_x8':  # the paper: U-Net 10.55M + encoder 1.49M
        assert round(sum(p.numel() for p in unet.parameters()) / 1e6, 2) == 10.55
        assert round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2) == 1.49


def test_convert_script_writes_basicsr_weights_that_reproduce_the_official_encoder(golden, tmp_path):
    ckpt = tmp_path / 'model_ckpt_steps_0.ckpt'
    torch.save(golden['x8']['checkpoint'], ckpt)
    out = tmp_path / 'converted'
    result = subprocess.run([sys.executable, 'scripts/convert_official_checkpoint.py', str(ckpt), '--out', str(out)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    encoder_file = torch.load(out / 'net_encoder_official.pth', weights_only=True)
    unet_file = torch.load(out / 'net_g_official.pth', weights_only=True)
    assert set(unet_file) == {'params'} and set(encoder_file) == {'params'}
    options = (out / 'model.yml').read_text()
    assert 'scale: 8' in options and 'SRDiffUNet' in options
    encoder = build_network(dict(type='SRDiffRRDBNet', scale=8, num_feat=8, num_block=8, num_grow_ch=4))
    encoder.load_state_dict(encoder_file['params'])
    with torch.no_grad():
        features = encoder.features((golden['x8']['img_lr'] + 1) / 2)
    assert (features[-1] - golden['x8']['rrdb_features'][-1]).abs().max() < 1e-4

    # srdiff-infer --model <converted folder> builds the same networks
    pipe = SRDiffPipeline.from_pretrained(str(out), precision='fp32')
    case = golden['x8']
    with torch.no_grad():
        cond = pipe.unet.project_condition(pipe.encoder.features((case['img_lr'] + 1) / 2), case['img_lr_up'])
        eps = pipe.unet(case['x_t'], case['t'], cond)
        assert (eps - case['eps_pred']).abs().max() < 1e-4
    assert pipe.scale == 8 and pipe.schedule.num_timesteps == case['config']['timesteps']

    # the same as .safetensors (the format of traiNNer-redux and spandrel), loaded the same way
    out_st = tmp_path / 'converted_st'
    result = subprocess.run([sys.executable, 'scripts/convert_official_checkpoint.py', str(ckpt), '--out', str(out_st),
                             '--format', 'safetensors'], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out_st.iterdir()) == ['model.yml', 'net_encoder_official.safetensors',
                                                        'net_g_official.safetensors']
    from safetensors.torch import load_file
    flat = load_file(out_st / 'net_g_official.safetensors')
    assert set(flat) == set(unet_file['params'])
    assert all(torch.equal(v, unet_file['params'][k]) for k, v in flat.items())
    pipe_st = SRDiffPipeline.from_pretrained(str(out_st), precision='fp32')
    with torch.no_grad():
        cond = pipe_st.unet.project_condition(pipe_st.encoder.features((case['img_lr'] + 1) / 2), case['img_lr_up'])
        assert torch.equal(pipe_st.unet(case['x_t'], case['t'], cond), eps)


def test_convert_script_refuses_a_file_that_is_not_an_srdiff_checkpoint(tmp_path):
    bad = tmp_path / 'other.ckpt'
    torch.save({'state_dict': {'model': {'conv.weight': torch.zeros(1)}}}, bad)
    result = subprocess.run([sys.executable, 'scripts/convert_official_checkpoint.py', str(bad), '--out',
                             str(tmp_path / 'o')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert 'not an official SRDiff checkpoint' in result.stderr and 'Traceback' not in result.stderr



def test_export_weights_writes_the_ema_state_as_safetensors_and_keeps_existing_files(tmp_path):
    from safetensors.torch import load_file
    params, ema = {'w': torch.ones(2, 3)}, {'w': torch.full((2, 3), 7.0)}
    torch.save({'params': params, 'params_ema': ema}, tmp_path / 'net_g_5.pth')
    run = lambda *extra: subprocess.run([sys.executable, 'scripts/export_weights.py', str(tmp_path / 'net_g_5.pth'),  # noqa: E731
                                         *extra], cwd=REPO, capture_output=True, text=True)
    assert run().returncode == 0
    assert torch.equal(load_file(tmp_path / 'net_g_5.safetensors')['w'], ema['w'])
    again = run('--key', 'params')
    assert again.returncode == 2 and 'exists; --force' in again.stderr
    assert run('--key', 'params', '--force').returncode == 0
    assert torch.equal(load_file(tmp_path / 'net_g_5.safetensors')['w'], params['w'])


def test_convert_script_recognises_the_official_unet_options_from_the_keys(tmp_path):
    import yaml
    variants = torch.load(REFERENCE / 'golden' / 'srdiff_official_variants_tiny.pt', weights_only=False)
    case = variants['x8_attn_up_input_wn']  # use_attn, up_input and use_wn
    ckpt = tmp_path / 'variant.ckpt'
    torch.save(case['checkpoint'], ckpt)
    result = subprocess.run([sys.executable, 'scripts/convert_official_checkpoint.py', str(ckpt), '--out',
                             str(tmp_path / 'out')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    options = yaml.safe_load((tmp_path / 'out' / 'model.yml').read_text())
    assert options['network_g']['use_attn'] is True and options['network_g']['up_input'] is True
    weights = torch.load(tmp_path / 'out' / 'net_g_official.pth', weights_only=True)['params']
    assert not [k for k in weights if k.endswith(('weight_g', 'weight_v'))]  # weight norm folded
    pipe = SRDiffPipeline.from_pretrained(str(tmp_path / 'out'), precision='fp32')
    with torch.no_grad():
        cond = pipe.unet.project_condition(pipe.encoder.features((case['img_lr'] + 1) / 2), case['img_lr_up'])
        assert (pipe.unet(case['x_t'], case['t'], cond) - case['eps_pred']).abs().max() < 1e-4
