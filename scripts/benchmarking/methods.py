"""The methods a benchmark compares, each a function from an LR batch of one image to its SR samples.

Every method returns a tensor (samples, C, H, W) in [0, 1]; deterministic methods return one sample.
"""
import time
from os import path as osp

import torch
import yaml
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.ops.resize import imresize


def load_test_options(path, device):
    """A BasicSR test options file as ``basicsr.test`` would prepare it (one process, no outputs)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'options file not found: {path}')
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    if not isinstance(opt, dict) or 'model_type' not in opt:
        raise OptionsError(f'{path}: not a BasicSR options file (no model_type)')
    if 'scale' not in opt:
        raise OptionsError(f'{path}: scale is not set')
    opt.update(is_train=False, dist=False, rank=0, world_size=1, auto_resume=False, device=str(device),
               num_gpu=1 if torch.device(device).type == 'cuda' else 0)
    opt.setdefault('path', {})
    for key, value in opt['path'].items():
        if value is not None and 'pretrain_network' in key:
            opt['path'][key] = osp.expanduser(value)
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        dataset_opt.update(phase=phase.split('_')[0], scale=opt['scale'])
    return opt


class Method:
    """A named SR method; ``stochastic`` methods draw several samples per image."""
    stochastic = False

    def __init__(self, name):
        self.name = name
        self.seconds = 0.0  # total time spent super-resolving
        self.images = 0

    def __call__(self, lq, index):
        start = time.perf_counter()
        sr = self.super_resolve(lq, index)
        if sr.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        self.images += 1
        return sr.clamp(0, 1).cpu()

    def super_resolve(self, lq, index):
        raise NotImplementedError


class Bicubic(Method):
    """MATLAB-style bicubic upsampling (the baseline, and SRDiff's lr_up)."""

    def __init__(self, scale):
        super().__init__('Bicubic')
        self.scale = scale

    def super_resolve(self, lq, index):
        return imresize(lq, self.scale)


class Encoder(Method):
    """SRDiff's L1-pretrained RRDB encoder used as an SR network on its own (the paper's "RRDB")."""

    def __init__(self, pipe):
        super().__init__('RRDB (L1 encoder)')
        self.encoder = pipe.encoder

    @torch.no_grad()
    def super_resolve(self, lq, index):
        return self.encoder(lq)


class SRDiff(Method):
    """An SRDiff pipeline's samples; image ``index`` is drawn with seed + index, as in the test pipeline."""
    stochastic = True

    def __init__(self, pipe, num_samples, seed, name=None):
        super().__init__(name or f'SRDiff ({pipe.describe()})')
        self.pipe, self.num_samples, self.seed = pipe, num_samples, seed

    def super_resolve(self, lq, index):
        return self.pipe(lq.expand(self.num_samples, -1, -1, -1), seed=self.seed + index)


class BasicSRModel(Method):
    """Any BasicSR model, through its public test API (feed_data, test, get_current_visuals)."""

    def __init__(self, name, model):
        super().__init__(name)
        self.model = model

    def super_resolve(self, lq, index):
        self.model.feed_data({'lq': lq})
        self.model.test()
        return self.model.get_current_visuals()['result']


def build_basicsr_model(options_path, device):
    """The model of a test options file on ``device`` (e.g. ``cuda:1``: SRDiffModel reads ``opt['device']``;
    a stock model, which only knows plain ``cuda``, has its networks moved there)."""
    opt = load_test_options(options_path, device)
    model = build_model(opt)
    if model.device != torch.device(device):
        model.device = torch.device(device)
        for name, net in vars(model).items():
            if name.startswith('net_') and isinstance(net, torch.nn.Module):
                net.to(model.device)
    return model, opt
