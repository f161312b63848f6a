"""The converter against the full-size official key lists (shared/reference/official_state_dict_keys.txt)."""
import re
import subprocess
import sys

import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr.inference.model_loading import load_srdiff
from srdiff_basicsr.official import convert_official_state_dict
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
    options = (out / 'network_options.yml').read_text()
    assert 'scale: 8' in options and 'SRDiffUNet' in options
    encoder = build_network(dict(type='SRDiffRRDBNet', scale=8, num_feat=8, num_block=8, num_grow_ch=4))
    encoder.load_state_dict(encoder_file['params'])
    with torch.no_grad():
        features = encoder.features((golden['x8']['img_lr'] + 1) / 2)
    assert (features[-1] - golden['x8']['rrdb_features'][-1]).abs().max() < 1e-4

    # srdiff-infer --model <converted folder> builds the same networks
    model = load_srdiff(str(out))
    case = golden['x8']
    with torch.no_grad():
        cond = model.net_g.project_condition(model.net_encoder.features((case['img_lr'] + 1) / 2))
        assert (model.net_g(case['x_t'], case['t'], cond) - case['eps_pred']).abs().max() < 1e-4
    assert model.opt['scale'] == 8 and model.diffusion.num_timesteps == case['config']['timesteps']


def test_convert_script_refuses_a_file_that_is_not_an_srdiff_checkpoint(tmp_path):
    bad = tmp_path / 'other.ckpt'
    torch.save({'state_dict': {'model': {'conv.weight': torch.zeros(1)}}}, bad)
    result = subprocess.run([sys.executable, 'scripts/convert_official_checkpoint.py', str(bad), '--out',
                             str(tmp_path / 'o')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert 'not an official SRDiff checkpoint' in result.stderr and 'Traceback' not in result.stderr

