"""StableSR's networks against the official code: the golden outputs of the official classes at a tiny
configuration (random weights, loaded under the official names), and the released configuration's key layout and
parameter counts (built on the meta device).

Tolerance: float32 round-off of a different order of operations (attention through diffusers' scaled dot product,
the legacy attention's two sqrt scalings as one): 2e-5 absolute on outputs of magnitude 2-6.
"""
import re
import pytest
import torch

from srdiff_basicsr.archs.arch_options import meta_network
from srdiff_basicsr.archs.cfw_autoencoder_arch import CFWAutoencoder, posterior_sample
from srdiff_basicsr.conversion.stablesr import (RELEASED_CONFIG, convert_vae_state_dict, network_options,
                                              split_checkpoint)
from tests.conftest import REFERENCE

ATOL = 2e-5


def close(ours, theirs):
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=0, atol=ATOL), (ours - theirs).abs().max().item()


@pytest.mark.parametrize('case', ['a_structcond', 'a_structcond_nonsquare'])
def test_time_aware_encoder_gives_the_official_features_keyed_by_width(stablesr_golden, stablesr_nets, case):
    data = stablesr_golden[case]
    with torch.no_grad():
        out = stablesr_nets[1](data['x'], data['t'])
    assert sorted(out) == sorted(data['out'])
    for width, expected in data['out'].items():
        close(out[width], expected)


@pytest.mark.parametrize('case', ['b_unet', 'b_unet_nonsquare'])
def test_unet_gives_the_official_eps(stablesr_golden, stablesr_nets, case):
    data = stablesr_golden[case]
    with torch.no_grad():
        close(stablesr_nets[0](data['x_t'], data['t'], (data['context'], data['struct_cond'])), data['eps'])


def test_unet_reads_each_spade_condition_at_its_own_width(stablesr_golden, stablesr_nets):
    data = stablesr_golden['b_unet']
    changed = {width: f.clone() for width, f in data['struct_cond'].items()}
    coarsest = min(changed, key=int)
    changed[coarsest] += 1
    with torch.no_grad():
        eps = stablesr_nets[0](data['x_t'], data['t'], (data['context'], changed))
    assert (eps - data['eps']).abs().max() > 1e-3  # every width's condition is used


def test_vae_posterior_features_and_cfw_decode_match_the_official(stablesr_golden, stablesr_nets):
    data, vae = stablesr_golden['c_vae'], stablesr_nets[2]
    with torch.no_grad():
        (mean, logvar), features = vae.encode(data['image'])
        close(mean, data['posterior_mean'])
        close(logvar, data['posterior_logvar'])
        for ours, theirs in zip(features, data['enc_fea'], strict=True):
            close(ours, theirs)
        close(posterior_sample(mean, logvar, data['sample_eps']), data['sample'])
        assert sorted(data['decode_mix']) == ['0.0', '0.5', '1.0']
        for w, expected in data['decode_mix'].items():
            close(vae.decode(data['z_for_decode'], features, float(w)), expected)


def test_cfw_weight_moves_the_decode_between_the_plain_decoder_and_full_fusion(stablesr_golden, stablesr_nets):
    data, vae = stablesr_golden['c_vae'], stablesr_nets[2]
    with torch.no_grad():
        _, features = vae.encode(data['image'])
        plain = vae.decode(data['z_for_decode'])
    close(plain, data['decode_mix']['0.0'])  # w 0 is the plain decoder
    assert (data['decode_mix']['1.0'] - plain).abs().max() > 1e-2


def released_keys():
    """({key: shape} of the diffusion checkpoint, of the CFW checkpoint) from ``stablesr_state_dict_keys.txt``."""
    diffusion, cfw = {}, {}
    keys = diffusion
    for line in (REFERENCE / 'stablesr_state_dict_keys.txt').read_text().splitlines():
        if line.startswith('## CFW checkpoint'):
            keys = cfw
        if line.startswith('#') or not line.strip():
            continue
        key, shape = line.split('\t')[:2]
        keys[key] = tuple(int(n) for n in re.findall(r'\d+', shape))
    return diffusion, cfw


def meta_networks():
    options = network_options(RELEASED_CONFIG)
    return {name: meta_network(options[name]) for name in ('network_g', 'network_encoder', 'network_vae')}


def count(net, contains=''):
    return sum(p.numel() for name, p in net.named_parameters() if contains in name)


def test_released_configuration_has_the_official_parameter_counts():
    meta = meta_networks()
    assert count(meta['network_g']) == 918_930_884
    assert count(meta['network_g'], 'spade') == 53_020_160
    assert count(meta['network_encoder']) == 52_494_080
    assert count(meta['network_vae']) == 128_047_591
    assert count(meta['network_vae'], 'fusion') == 44_393_728
    with torch.device('meta'):
        plain = CFWAutoencoder(cfw=False)
    assert count(plain) == 83_653_863


def test_every_released_key_maps_onto_our_networks_with_its_shape():
    (diffusion, cfw), meta = released_keys(), meta_networks()
    parts, unknown = split_checkpoint(diffusion)
    assert unknown == [] and len(parts['schedule']) == 12 and len(cfw) == 404
    expected = {'network_g': parts['unet'], 'network_encoder': parts['time_aware_encoder'],
                'network_vae': convert_vae_shapes(cfw)}
    expected['network_g']['empty_context'] = (1, 77, 1024)  # ours: the converter stores the empty prompt's
    for name, net in meta.items():
        ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert ours == expected[name], name
    first_stage = convert_vae_shapes(parts['first_stage'])
    assert first_stage == {k: v for k, v in expected['network_vae'].items() if not k.startswith('fusion.')}


def convert_vae_shapes(shapes):
    """The converter's renaming applied to a {key: shape} listing (the 1x1 attention convolutions lose their
    trailing 1, 1)."""
    fake = {key: torch.empty(shape, device='meta') for key, shape in shapes.items()}
    return {key: tuple(value.shape) for key, value in convert_vae_state_dict(fake).items()}
