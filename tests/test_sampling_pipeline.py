"""SRDiffPipeline as a Python API: built from what users have, sampling with any sampler of the table."""
import pytest
import torch

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.loading.weights import read_state_dict, write_state_dict
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import make_experiment


def test_from_an_experiment_folder_with_per_call_samplers(tmp_path):
    pipe = SRDiffPipeline.from_pretrained(str(make_experiment(tmp_path / 'exp', timesteps=10)))
    assert pipe.scale == 4 and pipe.schedule.num_timesteps == 10 and pipe.describe() == 'DDPM, 10 steps'
    lr = torch.rand(1, 3, 5, 6)
    sr = pipe(lr, seed=0)
    assert sr.shape == (1, 3, 20, 24) and pipe.nfe == 10 and torch.equal(sr, pipe(lr, seed=0))
    ddim = pipe(lr, seed=0, sampler='ddim', steps=3)
    assert pipe.nfe == 3 and pipe.describe() == 'DDPM, 10 steps'  # a call's sampler does not change the default
    pipe.set_sampling({'type': 'ddim', 'steps': 3})
    assert torch.equal(pipe(lr, seed=0), ddim) and pipe.describe() == 'DDIM, 3 steps, eta 0.0'
    counted = []
    pipe(lr, generator=torch.Generator().manual_seed(0), on_step=counted.append)
    assert counted == [1, 2, 3]
    with pytest.raises(OptionsError, match=r'sampler.steps: must be an integer from 1 to 10'):
        pipe(lr, sampler='ddim', steps=11)
    with pytest.raises(OptionsError, match='val.tile.size: must be a positive multiple'):
        pipe.set_sampling(tile={'size': 7})


def test_safetensors_weights_load_like_pth(tmp_path):
    exp = make_experiment(tmp_path / 'exp', timesteps=10)
    lr = torch.rand(1, 3, 4, 4)
    reference = SRDiffPipeline.from_pretrained(str(exp))(lr, seed=1)
    for name in ('net_g_latest', 'net_encoder_latest'):
        pth = exp / 'models' / f'{name}.pth'
        write_state_dict(read_state_dict(str(pth)), str(exp / 'models' / f'{name}.safetensors'))
        pth.unlink()
    assert torch.equal(SRDiffPipeline.from_pretrained(str(exp))(lr, seed=1), reference)


def test_an_experiment_with_a_second_options_file_still_loads_when_they_agree(tmp_path):
    import shutil

    import yaml
    exp = make_experiment(tmp_path / 'exp', timesteps=10)
    shutil.copy(exp / 'exp.yml', exp / 'resume_attempt.yml')  # what a failed resume with another file leaves
    assert SRDiffPipeline.from_pretrained(str(exp)).schedule.num_timesteps == 10
    other = yaml.safe_load((exp / 'exp.yml').read_text())
    other['diffusion']['timesteps'] = 20
    (exp / 'resume_attempt.yml').write_text(yaml.safe_dump(other))
    with pytest.raises(OptionsError, match=r'no options file with the network sizes found \(none, or several that'):
        SRDiffPipeline.from_pretrained(str(exp))


def test_a_models_options_file_is_parsed_once_per_version_and_handed_out_as_copies(tmp_path, monkeypatch):
    import yaml as yaml_module

    from srdiff_basicsr.loading import model_files
    path = tmp_path / 'network_options.yml'
    path.write_text('network_g: {type: SRDiffUNet, scale: 4}\nnetwork_encoder: {type: SRDiffRRDBNet}\n')
    parsed = []
    real = yaml_module.safe_load
    monkeypatch.setattr(model_files.yaml, 'safe_load', lambda f: parsed.append(1) or real(f))
    first = model_files.read_model_options(str(path))
    assert first['scale'] == 4
    first['network_g']['dim'] = 99  # a caller completing its copy
    second = model_files.read_model_options(str(path))
    assert parsed == [1] and 'dim' not in second['network_g']
    path.write_text('network_g: {type: SRDiffUNet, scale: 8}\nnetwork_encoder: {type: SRDiffRRDBNet}\n# edited\n')
    assert model_files.read_model_options(str(path))['scale'] == 8 and parsed == [1, 1]
