"""StableSR's golden data (``shared/reference/golden/stablesr_official_tiny.pt``) and our networks loaded with its
official state dicts, for the StableSR tests (the fixtures ``stablesr_golden`` and ``stablesr_nets`` in conftest)."""
from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.conversion.stablesr import (config_from_official, convert_vae_state_dict, network_options,
                                              split_checkpoint)
from tests import conftest


def tiny_config(golden):
    return config_from_official(golden['configs']['ldm'], golden['configs']['cfw'])


def load_golden():
    return conftest.load_golden('stablesr_official_tiny.pt', 'cpu')


def loaded_networks(golden):
    """Our (U-Net, time-aware encoder, VAE) from the tiny configuration, loaded with the official state dicts."""
    options = network_options(tiny_config(golden))
    parts, unknown = split_checkpoint(golden['state_dicts']['ldm'])
    assert unknown == []
    unet, encoder, vae = (build_arch(dict(options[k])).eval() for k in ('network_g', 'network_encoder', 'network_vae'))
    unet.load_state_dict({**parts['unet'], 'empty_context': golden['d_sample_old']['cond']})
    encoder.load_state_dict(parts['time_aware_encoder'])
    vae.load_state_dict(convert_vae_state_dict(golden['state_dicts']['cfw']))
    return unet, encoder, vae
