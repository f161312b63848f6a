"""Mistakes made through the Python API and the inference command that used to give silent wrong images, lost
outputs or tracebacks: each now one clear error, with nothing lost."""
import cv2
import numpy as np
import pytest
import torch

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.infer import main
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import load_script, make_experiment


@pytest.fixture(scope='module')
def experiment(tmp_path_factory):
    return str(make_experiment(tmp_path_factory.mktemp('api') / 'exp', timesteps=3))


@pytest.mark.parametrize('lr,message', [
    (torch.rand(1, 3, 4, 4) * 255, r'lr: values must be in \[0, 1\], got .* \(8-bit values\? divide by 255\)'),
    (torch.rand(1, 3, 4, 4).index_put_((torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), torch.tensor([2])),
                                       torch.tensor(float('nan'))), 'lr: 1 values are NaN or infinite'),
    (torch.rand(3, 4, 4), r'lr: expected a float \(N, 3, h, w\) tensor'),
])
def test_the_pipeline_refuses_an_lr_it_would_turn_into_garbage(experiment, lr, message):
    with pytest.raises(ValueError, match=message):
        SRDiffPipeline.from_pretrained(experiment)(lr)


def test_non_finite_sampler_options_are_refused_in_every_entry(experiment):
    pipe = SRDiffPipeline.from_pretrained(experiment)
    for options, message in (({'sampler': 'ddim', 'steps': 2, 'eta': float('inf')}, 'sampler.eta: must be a number'),
                             ({'sampler': 'ode', 'rtol': float('nan')}, 'sampler.rtol: must be a number > 0')):
        with pytest.raises(OptionsError, match=message):
            pipe(torch.rand(1, 3, 4, 4), **options)


def test_a_failed_move_leaves_the_pipeline_where_it_was(experiment):
    pipe = SRDiffPipeline.from_pretrained(experiment)
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(OptionsError, match=r'val.device cuda: this machine has no CUDA GPU'):
        pipe.set_execution('cuda')
    assert pipe.device == torch.device('cpu') and next(pipe.unet.parameters()).device.type == 'cpu'
    assert pipe(torch.rand(1, 3, 4, 4), seed=0).shape == (1, 3, 16, 16)


def image(path, seed=0):
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (4, 4, 3), dtype=np.uint8))


def test_an_input_named_like_a_temporary_file_survives_reruns(experiment, tmp_path):
    folder, out = tmp_path / 'in', tmp_path / 'out'
    folder.mkdir()
    image(folder / 'x.png'), image(folder / 'x.tmp.png', seed=1)
    assert main([str(folder), '-o', str(out), '--model', experiment, '--batch', '2']) == 0
    kept = (out / 'x.tmp.png').read_bytes()
    (out / 'x.png').unlink()  # a rerun redoes x.png, whose temporary file was once named x.tmp.png
    assert main([str(folder), '-o', str(out), '--model', experiment, '--batch', '2']) == 0
    assert sorted(p.name for p in out.iterdir()) == ['x.png', 'x.tmp.png'] and (out / 'x.tmp.png').read_bytes() == kept


def test_output_folder_mistakes_are_one_line_and_touch_nothing(experiment, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    image(folder / 'a.png')
    (tmp_path / 'a_file').write_text('x')
    for args, message in (
            ([str(folder), '-o', str(folder), '--num-samples', '2'], 'is the input folder; its outputs would be taken'),
            ([str(folder), '-o', str(tmp_path / 'a_file' / 'below')], 'cannot make this folder')):
        assert main([*args, '--model', experiment]) == 2
        err = capsys.readouterr().err
        assert 'error: -o ' in err and message in err and 'Traceback' not in err, err
    assert sorted(p.name for p in folder.iterdir()) == ['a.png']


def test_an_interrupted_folder_says_so_in_one_line(experiment, tmp_path, capsys, monkeypatch):
    from srdiff_basicsr import infer
    folder = tmp_path / 'in'
    folder.mkdir()
    image(folder / 'a.png')

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(infer, 'super_resolve', interrupted)
    assert main([str(folder), '-o', str(tmp_path / 'out'), '--model', experiment]) == 130
    err = capsys.readouterr().err
    assert 'interrupted: the outputs written so far are complete' in err and 'Traceback' not in err


def test_fuse_refuses_a_box_with_a_negative_corner(experiment, tmp_path, capsys):
    image(tmp_path / 'a.png'), image(tmp_path / 'b.png', seed=2)
    assert main(['fuse', '--target', str(tmp_path / 'b.png'), '--source', str(tmp_path / 'a.png'), '--box=-1,0,2,2',
                 '-o', str(tmp_path / 'f.png'), '--model', experiment]) == 2
    assert '--box -1,0,2,2: TOP and LEFT must be >= 0' in capsys.readouterr().err
    assert not (tmp_path / 'f.png').exists()


def test_export_weights_refuses_a_key_the_file_does_not_have(tmp_path, capsys):
    script = load_script('export_weights.py')
    torch.save({'params': {'w': torch.zeros(1)}, 'params_ema': {'w': torch.ones(1)}}, tmp_path / 'net_g.pth')
    assert script.main([str(tmp_path / 'net_g.pth'), '--key', 'params_emaa']) == 2
    assert "has no 'params_emaa'; it has params, params_ema" in capsys.readouterr().err
    assert not (tmp_path / 'net_g.safetensors').exists()
    assert script.main([str(tmp_path / 'net_g.pth')]) == 0  # the default: params_ema


def test_a_file_name_that_is_not_utf8_is_super_resolved_like_any_other(experiment, tmp_path):
    import os
    folder, out = tmp_path / 'in', tmp_path / 'out'
    folder.mkdir()
    image(folder / 'good.png')
    odd = os.fsdecode(bytes(folder) + b'/caf\xe9.png')  # Latin-1 bytes, as an old camera or archive names it
    with open(odd, 'wb') as f:
        f.write((folder / 'good.png').read_bytes())
    assert main([str(folder), '-o', str(out), '--model', experiment]) == 0  # OpenCV's imread crashed (status 139)
    assert sorted(os.listdir(out)) == sorted(['good.png', os.path.basename(odd)])
    assert (out / 'good.png').read_bytes() == open(os.path.join(out, os.path.basename(odd)), 'rb').read()
