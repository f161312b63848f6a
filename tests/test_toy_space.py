"""A new family's space is one class and one table entry: a toy space (the HR image itself diffused in [-1, 1],
over the bicubic of the LR as its reference), defined and registered here only, trains, resumes, validates and
tests through BasicSR's stock entries and samples through SRDiffPipeline."""
import os
import re
import subprocess
import sys

import torch

from srdiff_basicsr.diffusion.condition import ProjectedCondition
from srdiff_basicsr.diffusion.spaces import SPACES, SpaceEntry, complete_pixel_networks
from srdiff_basicsr.ops.resize import imresize
from tests.conftest import REPO, srdiff_options, tiny_data_and_encoder, write_options


class ToyImageSpace:
    """x0 = the HR image in [-1, 1], whole (no residual): a space no family of the project uses."""

    factor, networks, tile_weights, clip_x0 = 1, (), 'gaussian', True

    def __init__(self, scale):
        self.scale = self.canvas_grid = scale

    def reference(self, lr, noise=None):
        return imresize(lr, self.scale)

    def encode(self, hr, lr_up):
        return hr * 2 - 1

    def decode(self, x0, lr_up, clamp=True):
        sr = (x0.clamp(-1, 1) + 1) / 2
        return sr.clamp(0, 1) if clamp else sr

    def shape(self, lr_up):
        return lr_up.shape

    def lr_x0(self, lr_up):
        return lr_up * 2 - 1

    def colour_reference(self, lr_up):
        return lr_up.clamp(0, 1)


def register():
    SPACES['toy_image'] = SpaceEntry(
        lambda scale, networks: ToyImageSpace(scale), {}, ProjectedCondition, complete_pixel_networks,
        loss={'type': 'MSELoss', 'loss_weight': 1.0},
        required_weights={'pretrain_network_encoder': 'the toy space conditions on a trained LR encoder'})


RUN = 'import runpy, sys; from tests import test_toy_space; test_toy_space.register(); ' \
      'sys.argv[0] = {module!r}; runpy.run_module({module!r}, run_name="__main__", alter_sys=True)'


def basicsr(module, *args, cwd):
    """``python -m <module> args`` with the toy space registered first, in that process."""
    result = subprocess.run([sys.executable, '-c', RUN.format(module=module), *args], cwd=cwd, capture_output=True,
                            text=True, timeout=300, env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_a_toy_space_trains_resumes_validates_tests_and_samples(tmp_path):
    lr_dir, hr_dir, encoder = tiny_data_and_encoder(tmp_path, hr_size=32)
    opt = srdiff_options('toy', lr_dir, hr_dir, encoder, total_iter=2, timesteps=8)
    opt['diffusion']['space'] = 'toy_image'
    opt['val'].update(val_freq=2, sampler={'type': 'ddim', 'steps': 2})
    log = basicsr('basicsr.train', '-opt', write_options(tmp_path / 'toy.yml', opt), cwd=tmp_path)
    assert re.search(r'l_noise: [\d.e+-]+', log) and re.search(r'# psnr: [\d.]+', log)  # trained and validated
    resumed = basicsr('basicsr.train', '-opt', str(tmp_path / 'toy.yml'), '--auto_resume', '--force_yml',
                      'train:total_iter=4', cwd=tmp_path)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', resumed)
    models = tmp_path / 'experiments' / 'toy' / 'models'

    test_opt = srdiff_options('toy_test', lr_dir, hr_dir, str(models / 'net_encoder_latest.pth'), is_train=False,
                              timesteps=8)
    test_opt['diffusion']['space'] = 'toy_image'
    test_opt['path']['pretrain_network_g'] = str(models / 'net_g_latest.pth')
    test_opt['val']['sampler'] = {'type': 'ddim', 'steps': 2}
    basicsr('basicsr.test', '-opt', write_options(tmp_path / 'toy_test.yml', test_opt), cwd=tmp_path)
    assert len(list((tmp_path / 'results' / 'toy_test' / 'visualization' / 'tiny_test').glob('*.png'))) == 2

    register()  # and here, for the pipeline
    try:
        from srdiff_basicsr.pipeline import SRDiffPipeline
        pipe = SRDiffPipeline.from_pretrained(str(tmp_path / 'experiments' / 'toy'))
        assert isinstance(pipe.space, ToyImageSpace)
        lr = torch.rand(1, 3, 8, 8)
        sr = pipe(lr, seed=0, sampler='ddim', steps=2)
        assert sr.shape == (1, 3, 32, 32) and pipe.nfe == 2
        x0, _, crop = pipe.sample_space(lr, seed=0, sampler='ddim', steps=2)
        assert torch.equal(sr, ((x0.clamp(-1, 1) + 1) / 2)[crop])  # decoded as the toy's image, not as a residual
    finally:
        del SPACES['toy_image']
