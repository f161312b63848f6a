"""srdiff-infer on a folder as users have it: broken, grayscale, RGBA and 16-bit files; model formats; errors."""
import filecmp
import os
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from srdiff_basicsr.infer import main
from srdiff_basicsr.ops.resize import imresize_uint8
from tests.conftest import make_experiment, photo_crops, run_cli

FAST = ['--sampler', 'ddim', '--steps', '3', '--device', 'cpu']


@pytest.fixture(scope='module')
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory.mktemp('experiment') / 'tiny_srdiff', timesteps=10)


@pytest.fixture
def folder(tmp_path):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    rgb, other = photo_crops(2, 12, seed=2)  # both with texture
    cv2.imwrite(str(inputs / 'colour.png'), rgb)
    cv2.imwrite(str(inputs / 'photo.jpg'), other)
    cv2.imwrite(str(inputs / 'gray.png'), cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY))
    alpha = np.tile(np.linspace(0, 255, 12).astype(np.uint8), (12, 1))
    cv2.imwrite(str(inputs / 'rgba.png'), np.dstack([rgb, alpha]))
    cv2.imwrite(str(inputs / 'deep.png'), rgb.astype(np.uint16) * 257 + 100)
    cv2.imwrite(str(inputs / 'grey.jpg'), cv2.cvtColor(other, cv2.COLOR_BGR2GRAY))
    Image.fromarray(rgb[..., ::-1]).quantize(16).save(inputs / 'palette.png')  # an indexed PNG, 16 colours
    (inputs / 'broken.png').write_bytes(b'not a png at all')
    (inputs / 'notes.txt').write_text('not an image: ignored')
    return inputs, rgb, alpha


def test_folder_with_every_kind_of_file(experiment, folder, tmp_path, capsys):
    inputs, rgb, alpha = folder
    out = tmp_path / 'out'
    code = main([str(inputs), '-o', str(out), '--model', str(experiment), *FAST])
    assert code == 1  # only because of the broken file
    err = capsys.readouterr().err
    assert f'skipped: {inputs}/broken.png: not a readable image' in err
    assert '7 image(s) super-resolved' in err and '1 failed' in err
    assert sorted(os.listdir(out)) == ['colour.png', 'deep.png', 'gray.png', 'grey.jpg', 'palette.png', 'photo.jpg',
                                       'rgba.png']

    colour = cv2.imread(str(out / 'colour.png'), cv2.IMREAD_UNCHANGED)
    assert colour.shape == (48, 48, 3) and colour.dtype == np.uint8
    gray = cv2.imread(str(out / 'gray.png'), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (48, 48) and gray.dtype == np.uint8
    rgba = cv2.imread(str(out / 'rgba.png'), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (48, 48, 4)
    assert np.abs(rgba[..., 3].astype(int) - imresize_uint8(alpha[..., None], 4)[..., 0]).max() <= 1  # bicubic alpha
    assert np.array_equal(rgba[..., :3], colour)  # the colour channels are super-resolved as without alpha
    deep = cv2.imread(str(out / 'deep.png'), cv2.IMREAD_UNCHANGED)
    assert deep.shape == (48, 48, 3) and deep.dtype == np.uint16 and (deep % 257).any()  # real 16-bit values
    assert cv2.imread(str(out / 'photo.jpg')).shape == (48, 48, 3)
    grey_jpeg = cv2.imread(str(out / 'grey.jpg'), cv2.IMREAD_UNCHANGED)
    assert grey_jpeg.shape == (48, 48) and grey_jpeg.dtype == np.uint8
    assert Image.open(inputs / 'palette.png').mode == 'P'
    palette = cv2.imread(str(out / 'palette.png'), cv2.IMREAD_UNCHANGED)
    assert palette.shape == (48, 48, 3) and palette.dtype == np.uint8
    assert len(np.unique(palette.reshape(-1, 3), axis=0)) > 16  # super-resolved, not 16 colours

    # a rerun keeps what exists; --force redoes it, and the same seed gives the same images
    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    assert main([str(inputs), '-o', str(out), '--model', str(experiment), *FAST]) == 1
    assert {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)} == before
    assert '0 image(s) super-resolved into' in capsys.readouterr().err
    again = tmp_path / 'again'
    shutil.copy(inputs / 'colour.png', tmp_path / 'colour.png')
    assert main([str(tmp_path / 'colour.png'), '-o', str(again), '--model', str(experiment), *FAST]) == 0
    assert filecmp.cmp(again / 'colour.png', out / 'colour.png', shallow=False)
    assert main([str(tmp_path / 'colour.png'), '-o', str(again), '--model', str(experiment), '--seed', '1', '--force',
                 *FAST]) == 0
    assert not filecmp.cmp(again / 'colour.png', out / 'colour.png', shallow=False)


def test_samples_tiles_colour_fix_and_weight_files(experiment, folder, tmp_path):
    inputs, _, _ = folder
    out = tmp_path / 'out'
    net_g = experiment / 'models' / 'net_g_latest.pth'
    code = main([str(inputs / 'colour.png'), '-o', str(out), '--model', str(net_g), '--options',
                 str(experiment / 'tiny_srdiff.yml'), '--num-samples', '2', '--tile', '32', '--tile-overlap', '16',
                 '--colour-fix', 'adain', *FAST])
    assert code == 0 and sorted(os.listdir(out)) == ['colour_s0.png', 'colour_s1.png']
    s0, s1 = (cv2.imread(str(out / name)).astype(int) for name in sorted(os.listdir(out)))
    assert s0.shape == (48, 48, 3) and (s0 != s1).any()


def test_an_ecdp_experiment_samples_with_the_ode_and_its_temperature(tmp_path):
    ecdp = make_experiment(tmp_path / 'tiny_ecdp', network_g=dict(type='ECDPUNet', channels=[8, 16], num_blocks=1,
                                                                  time_dim=8, feature_blocks=[0, 1], num_out_ch=6),
                           diffusion=dict(schedule='vp', timesteps=10, res_rescale=2.5, clip_x0=False,
                                          parametrization='hybrid'))
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'photo.png'), photo_crops(1, 12, seed=3)[0])
    outputs = []
    for seed in (0, 1, 0):
        out = tmp_path / f'out_{len(outputs)}'
        temperature = '0' if len(outputs) < 2 else '1'
        assert main([str(inputs), '-o', str(out), '--model', str(ecdp), '--sampler', 'ode', '--rtol', '0.1', '--atol',
                     '0.1', '--temperature', temperature, '--seed', str(seed), '--device', 'cpu']) == 0
        outputs.append(cv2.imread(str(out / 'photo.png')))
    assert outputs[0].shape == (48, 48, 3)
    assert (outputs[0] == outputs[1]).all()  # temperature 0: no noise, whatever the seed
    assert (outputs[0] != outputs[2]).any()


def test_errors_are_one_line_with_exit_status_2(experiment, folder, tmp_path, capsys):
    inputs, _, _ = folder
    cases = [(['--half'], '--half needs a CUDA device'),
             (['--tile', '30'], 'command line.tile.size: must be a positive multiple of 4 (of 2, as the U-Net halves it, of the scale 4)'),
             (['--sampler', 'ddim', '--steps', '0'], 'command line.sampler.steps: must be an integer from 1 to 10'),
             (['--model', str(tmp_path / 'none')], '--model: no such file or folder')]
    for extra, message in cases:
        args = [str(inputs), '-o', str(tmp_path / 'o'), '--model', str(experiment), '--device', 'cpu', *extra]
        assert main(args) == 2, extra
        assert f'error: {message}' in capsys.readouterr().err


def test_console_script_and_module_entry(experiment, folder, tmp_path):
    inputs, _, _ = folder
    result = run_cli(['-m', 'srdiff_basicsr.infer', str(inputs / 'gray.png'), '-o', str(tmp_path / 'o'), '--model',
                      str(experiment), *FAST], cwd=tmp_path)
    assert '1 image(s) super-resolved' in result.stderr
    assert os.path.isfile(os.path.join(os.path.dirname(sys.executable), 'srdiff-infer'))  # the console script


def test_manipulation_subcommands_write_their_images(experiment, folder, tmp_path):
    inputs, _, _ = folder
    out = tmp_path / 'interp'
    assert main(['interpolate', '--lr', str(inputs / 'colour.png'), '--lam', '0', '0.5', '--t-bar', '5', '-o', str(out),
                 '--model', str(experiment), '--device', 'cpu']) == 0
    assert sorted(os.listdir(out)) == ['a.png', 'b.png', 'interp_0.5.png', 'interp_0.png']
    assert cv2.imread(str(out / 'interp_0.5.png')).shape == (48, 48, 3)
    fused = tmp_path / 'fused.png'
    args = ['fuse', '--target', str(out / 'a.png'), '--source', str(out / 'b.png'), '--box', '8,8,16,16',
            '--t-bar', '3', '-o', str(fused), '--model', str(experiment), '--device', 'cpu']
    assert main(args) == 0
    result, target = cv2.imread(str(fused)), cv2.imread(str(out / 'a.png'))
    outside = np.ones((48, 48), bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(result[outside], target[outside]) and not np.array_equal(result, target)
    assert main(args) == 2  # the output exists: not overwritten without --force


def test_batching_same_size_images_changes_nothing(experiment, tmp_path):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    for i, crop in enumerate(photo_crops(3, 12, seed=2)):
        cv2.imwrite(str(inputs / f'{i}.png'), crop)
    cv2.imwrite(str(inputs / 'other_size.png'), photo_crops(1, 16, seed=2)[0])
    for batch in ('1', '3'):
        assert main([str(inputs), '-o', str(tmp_path / batch), '--batch', batch, '--num-samples', '2',
                     '--model', str(experiment), '--sampler', 'ddim', '--steps', '3', '--eta', '1',
                     '--device', 'cpu']) == 0
    names = sorted(os.listdir(tmp_path / '1'))
    assert len(names) == 8 and names == sorted(os.listdir(tmp_path / '3'))
    for name in names:
        assert filecmp.cmp(tmp_path / '1' / name, tmp_path / '3' / name, shallow=False), name
    assert main([str(inputs / '0.png'), '-o', str(tmp_path / 'bf16'), '--precision', 'bf16', '--model',
                 str(experiment), *FAST]) == 0


def test_outputs_never_replace_the_inputs(experiment, folder, capsys):
    inputs, _, _ = folder
    before = (inputs / 'colour.png').read_bytes()
    assert main([str(inputs), '-o', str(inputs), '--force', '--model', str(experiment), *FAST]) == 2
    assert 'is the input folder' in capsys.readouterr().err
    assert (inputs / 'colour.png').read_bytes() == before
    args = ['fuse', '--target', str(inputs / 'colour.png'), '--source', str(inputs / 'gray.png'), '--box', '0,0,4,4',
            '-o', str(inputs / 'colour.png'), '--force', '--model', str(experiment), '--device', 'cpu']
    assert main(args) == 2 and 'is one of the input images' in capsys.readouterr().err
    assert (inputs / 'colour.png').read_bytes() == before


def test_outscale_suffix_ext_and_the_model_as_alpha_upsampler(experiment, folder, tmp_path, capsys):
    inputs, rgb, alpha = folder
    out = tmp_path / 'out'
    for name in ('colour.png', 'rgba.png', 'deep.png', 'photo.jpg'):
        shutil.copy(inputs / name, tmp_path / name)
    args = ['--model', str(experiment), *FAST]
    assert main([str(tmp_path / 'photo.jpg'), '-o', str(out), '--outscale', '2.5', '--suffix', 'out', '--ext', 'png',
                 *args]) == 0
    assert cv2.imread(str(out / 'photo_out.png'), cv2.IMREAD_UNCHANGED).shape == (30, 30, 3)  # 2.5 x 12, as PNG
    assert main([str(tmp_path / 'rgba.png'), '-o', str(out), '--outscale', '2', *args]) == 0
    assert cv2.imread(str(out / 'rgba.png'), cv2.IMREAD_UNCHANGED).shape == (24, 24, 4)
    for name, why in (('rgba.png', 'has an alpha channel, which .jpg cannot hold'), ('deep.png', 'is 16-bit, which '
                                                                                                '.jpg cannot hold')):
        assert main([str(tmp_path / name), '-o', str(out), '--ext', 'jpg', *args]) == 1
        assert why in capsys.readouterr().err and not (out / name.replace('.png', '.jpg')).exists()
    assert main([str(tmp_path / 'colour.png'), '-o', str(out), '--outscale', '0', *args]) == 2

    # the model's alpha: the alpha sampled as a grey image with the same seed, as a grey input gives
    cv2.imwrite(str(tmp_path / 'alpha.png'), alpha)
    assert main([str(tmp_path / 'alpha.png'), '-o', str(tmp_path / 'grey_out'), *args]) == 0
    assert main([str(tmp_path / 'rgba.png'), '-o', str(tmp_path / 'model_alpha'), '--alpha-upsampler', 'model',
                 *args]) == 0
    sampled_alpha = cv2.imread(str(tmp_path / 'model_alpha' / 'rgba.png'), cv2.IMREAD_UNCHANGED)[..., 3]
    assert np.array_equal(sampled_alpha, cv2.imread(str(tmp_path / 'grey_out' / 'alpha.png'), cv2.IMREAD_UNCHANGED))
    bicubic = imresize_uint8(alpha[..., None], 4)[..., 0]
    assert np.abs(sampled_alpha.astype(int) - bicubic).max() > 1  # not the bicubic one


def test_out_of_memory_names_a_tile_that_fits(experiment):
    from srdiff_basicsr.infer import out_of_memory_hint
    from srdiff_basicsr.inference.images import LoadedImage
    from srdiff_basicsr.pipeline import SRDiffPipeline
    pipe = SRDiffPipeline.from_pretrained(str(experiment))
    image = LoadedImage(torch.zeros(1, 3, 100, 60), None, False, 255)
    hint = out_of_memory_hint(pipe, image)
    assert 'the whole 240x400 output: try --tile 120 --tile-overlap 30' in hint
    pipe.set_sampling({'type': 'ddim', 'steps': 2}, tile={'size': 120, 'overlap': 30})  # a tile the model takes
