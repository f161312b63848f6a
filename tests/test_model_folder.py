"""A model on disk is one manifest (``model.yml``) and one weight file per network: ``save_pretrained`` writes
it, a training checkpoint writes it naming the checkpoint, ``from_pretrained`` reads only it; folders older than
the manifest load through ``model_files.legacy_manifest``."""
import pytest
import torch
import yaml

from srdiff_basicsr.errors import WeightsError
from srdiff_basicsr.loading import model_files
from srdiff_basicsr.loading.model_folder import MANIFEST, read_manifest
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import make_experiment


def refuse_legacy(monkeypatch):
    """From here on from_pretrained may read nothing but a manifest."""
    def refuse(*args, **kwargs):
        raise AssertionError('the legacy adapter was used')
    monkeypatch.setattr(model_files, 'legacy_manifest', refuse)


@pytest.fixture
def no_legacy(monkeypatch):
    refuse_legacy(monkeypatch)


def test_save_pretrained_writes_a_folder_that_samples_as_the_pipeline(tmp_path, monkeypatch):
    old = SRDiffPipeline.from_pretrained(str(make_experiment(tmp_path / 'old', timesteps=10,
                                                             diffusion={'timesteps': 10, 'res_rescale': 2.5})))
    old.set_sampling({'type': 'ddim', 'steps': 3})
    manifest = old.save_pretrained(str(tmp_path / 'saved'))
    assert sorted(p.name for p in (tmp_path / 'saved').iterdir()) == [MANIFEST, 'net_encoder.pth', 'net_g.pth']
    document = yaml.safe_load(open(manifest))
    assert document['diffusion']['res_rescale'] == 2.5 and document['sampler']['steps'] == 3
    assert document['weights']['network_g'] == {'file': 'net_g.pth', 'param_key': 'params'}  # relative: movable

    refuse_legacy(monkeypatch)
    (tmp_path / 'saved').rename(tmp_path / 'moved')
    new = SRDiffPipeline.from_pretrained(str(tmp_path / 'moved'))
    assert new.sampler_opt == old.sampler_opt and new.space.res_rescale == 2.5
    lr = torch.rand(1, 3, 6, 5)
    assert torch.equal(new(lr, seed=1), old(lr, seed=1))


def test_a_stablesr_pipeline_saves_its_vae_too_and_samples_the_same(tmp_path, stablesr_nets, no_legacy):
    from srdiff_basicsr.conversion.stablesr import network_options
    from tests.stablesr_fixtures import load_golden, tiny_config
    unet, encoder, vae = stablesr_nets
    sections = network_options(tiny_config(load_golden()))
    pipe = SRDiffPipeline.from_networks(encoder, unet, 4, {'space': 'vae_latent', 'schedule': 'scaled_linear'},
                                        {'network_vae': vae}, options=sections, sampler={'type': 'ddim', 'steps': 2},
                                        precision='fp32')
    pipe.save_pretrained(str(tmp_path / 'stablesr'))
    assert (tmp_path / 'stablesr' / 'net_vae.pth').is_file()
    loaded = SRDiffPipeline.from_pretrained(str(tmp_path / 'stablesr'), precision='fp32')
    lr = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(lr, seed=0), pipe(lr, seed=0))


def test_a_pipeline_of_plain_networks_names_what_save_pretrained_lacks(tmp_path):
    from srdiff_basicsr.errors import OptionsError
    pipe = SRDiffPipeline.from_pretrained(str(make_experiment(tmp_path / 'e', timesteps=10)))
    plain = SRDiffPipeline.from_networks(pipe.encoder, pipe.unet, 4, {'timesteps': 10})
    with pytest.raises(OptionsError, match='built from plain networks'):
        plain.save_pretrained(str(tmp_path / 'out'))


def test_a_training_checkpoint_writes_the_manifest_of_its_weights(tmp_path, no_legacy):
    from basicsr.archs import build_network

    from tests.conftest import TINY_ENCODER, save_basicsr_weights
    from tests.test_model import batch, make_model
    encoder = save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), tmp_path / 'encoder.pth')
    model = make_model(tmp_path, encoder, train__ema_decay=0.5)
    model.feed_data(batch())
    model.optimize_parameters(1)
    model.save(0, 1)
    manifest = read_manifest(str(tmp_path / MANIFEST))
    assert manifest.weights['network_g'] == (str(tmp_path / 'models' / 'net_g_1.pth'), 'params_ema')
    assert manifest.weights['network_encoder'] == (str(tmp_path / 'models' / 'net_encoder_1.pth'), 'params')
    assert manifest.sampler is None  # the paper's DDPM: not a student
    model.optimize_parameters(2)
    model.save(0, -1)  # BasicSR's last save: latest
    assert read_manifest(str(tmp_path / MANIFEST)).weights['network_g'][0].endswith('net_g_latest.pth')
    loaded = SRDiffPipeline.from_pretrained(str(tmp_path))
    lr = torch.rand(1, 3, 4, 4)
    assert torch.equal(loaded(lr, seed=0, sampler='ddim', steps=2), model.pipeline(lr, seed=0, sampler='ddim', steps=2))


def test_a_manifest_names_missing_weights(tmp_path):
    (tmp_path / 'out').mkdir()
    from srdiff_basicsr.loading.model_folder import write_manifest
    options = {'scale': 4, 'network_g': {}, 'network_encoder': {}, 'diffusion': {}}
    write_manifest(str(tmp_path / 'out'), options, {'network_g': (str(tmp_path / 'out' / 'gone.pth'), 'params')})
    with pytest.raises(WeightsError, match=r'model.yml: the weights of network_g, .*gone.pth, are missing'):
        SRDiffPipeline.from_pretrained(str(tmp_path / 'out'))
