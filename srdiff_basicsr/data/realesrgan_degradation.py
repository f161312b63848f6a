"""Real-ESRGAN's second-order degradation model (Wang et al., ICCVW 2021) on the training batch, on the model's
device: the HR crops and blur kernels of BasicSR's ``RealESRGANDataset`` in, (LR, HR) training pairs out.

The order of operations and the option names and defaults are Real-ESRGAN's (``RealESRNetModel.feed_data`` and
``options/train_realesrnet_x4plus.yml``); every step is a BasicSR function. The random choices come from python's,
numpy's and torch's global generators in Real-ESRGAN's order, so that BasicSR's ``manual_seed`` decides them and
``resume`` (which saves those generators) restores them.
"""
import random

import numpy as np
import torch
from basicsr.data import degradations
from basicsr.data.transforms import paired_random_crop
from basicsr.utils import DiffJPEG, USMSharp, img_process_util
from torch.nn import functional as F

from srdiff_basicsr.errors import OptionsError, is_int, is_number, is_probability, require
from srdiff_basicsr.option_spec import Option, checked_options, must_be

RESIZE_MODES = ['area', 'bilinear', 'bicubic']
DATASET_OUTPUT_SIZE = 400  # RealESRGANDataset crops or pads every HR to 400 x 400 (hard-coded there)
KERNEL_REACH = 11  # a 21-px kernel's reflection padding needs 11 px: after the first resize (down to 0.15), in the LR
MIN_DEGRADE_SIZE = 80


def _is_range(value):
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(v) for v in value) and value[0] <= value[1]


_PROBABILITY = must_be(is_probability, 'a probability in [0, 1]')
_RESIZE_PROB = must_be(lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(is_number(p) and p >= 0 for p in v)
                       and sum(v) > 0, 'three weights >= 0, not all 0, of up, down and keep')
_RESIZE_RANGE = must_be(lambda v: _is_range(v) and 0 < v[0] <= 1 <= v[1],
                        '[low, high] with 0 < low <= 1 <= high (the down and up scales)')
_NON_NEGATIVE_RANGE = must_be(lambda v: _is_range(v) and v[0] >= 0, '[low, high] with 0 <= low <= high')
_JPEG_RANGE = must_be(lambda v: _is_range(v) and 1 <= v[0] and v[1] <= 100, '[low, high] JPEG qualities within [1, 100]')


def _degrade_size(value, scale, batch_size):
    smallest = max(MIN_DEGRADE_SIZE, KERNEL_REACH * scale)
    if not (value is None or (is_int(value) and smallest <= value <= DATASET_OUTPUT_SIZE and value % scale == 0)):
        return (f'~ or a multiple of the scale ({scale}) from {smallest} to {DATASET_OUTPUT_SIZE}, the size of '
                "RealESRGANDataset's HR crops (the 21-px kernels' reflection padding needs 11 px after the first resize "
                'and in the LR)')


def _queue_size(value, scale, batch_size):
    if not (is_int(value) and value >= batch_size and value % batch_size == 0):
        return f'a multiple of the batch size ({batch_size}); the pool exchanges whole batches'


def _order_options(order, resize_prob, resize_range, noise_range, poisson_range):
    which = 'first' if order == '' else 'second'
    return {
        f'resize_prob{order}': Option(resize_prob, f'the {which} resize: weights of up, down and keep', _RESIZE_PROB),
        f'resize_range{order}': Option(resize_range, f'the {which} resize: its scale range', _RESIZE_RANGE),
        f'gaussian_noise_prob{order}': Option(0.5, f'the {which} noise: Gaussian (else Poisson)', _PROBABILITY),
        f'noise_range{order}': Option(noise_range, f'the {which} noise: Gaussian sigma range (0-255)',
                                      _NON_NEGATIVE_RANGE),
        f'poisson_scale_range{order}': Option(poisson_range, f'the {which} noise: Poisson scale range',
                                              _NON_NEGATIVE_RANGE),
        f'gray_noise_prob{order}': Option(0.4, f'the {which} noise: the same for all channels', _PROBABILITY),
        f'jpeg_range{order}': Option([30, 95], f'the {which} JPEG: quality range', _JPEG_RANGE)}


# train_realesrnet_x4plus.yml's values; checks take the run's scale and batch size
REALESRGAN_OPTIONS = {
    'gt_usm': Option(True, 'the HR is sharpened (USM) before it is degraded, and trained on sharpened',
                     must_be(lambda v: isinstance(v, bool), 'true or false')),
    **_order_options('', [0.2, 0.7, 0.1], [0.15, 1.5], [1, 30], [0.05, 3]),
    'second_blur_prob': Option(0.8, 'the second blur is applied', _PROBABILITY),
    **_order_options('2', [0.3, 0.4, 0.3], [0.3, 1.2], [1, 25], [0.05, 2.5]),
    'gt_size': Option(256, 'the HR crop trained on, cut after the degradation (a multiple of the scale)'),
    'queue_size': Option(180, 'the training-pair pool (a multiple of the batch size)', _queue_size),
    'degrade_size': Option(None, "ours: the HR crop degraded (~: the dataset's whole 400-px crop, as Real-ESRGAN)",
                           _degrade_size),
}
REALESRGAN_DEFAULTS = {key: option.default for key, option in REALESRGAN_OPTIONS.items()}


def filter2D(img, kernel):
    """BasicSR's ``filter2D``, looked up when called: ``compat`` replaces it with its contiguity fix."""
    return img_process_util.filter2D(img, kernel)


class TrainingPairPool:
    """Real-ESRGAN's training-pair pool: one batch shares a resize scale, a noise type and a JPEG order, so pairs
    go through a shuffled pool of ``size`` and a batch is drawn from it, mixing degradations of several batches.
    While the pool fills, batches pass through unchanged."""

    def __init__(self, size):
        self.size = size
        self.lq = self.gt = None
        self.filled = 0

    def exchange(self, lq, gt):
        batch = lq.size(0)
        if self.lq is None:
            self.lq, self.gt = lq.new_zeros((self.size, *lq.shape[1:])), gt.new_zeros((self.size, *gt.shape[1:]))
        if self.filled < self.size:
            self.lq[self.filled:self.filled + batch], self.gt[self.filled:self.filled + batch] = lq, gt
            self.filled += batch
            return lq, gt
        order = torch.randperm(self.size)
        self.lq, self.gt = self.lq[order], self.gt[order]
        drawn = self.lq[:batch].clone(), self.gt[:batch].clone()
        self.lq[:batch], self.gt[:batch] = lq, gt
        return drawn

    def state_dict(self):
        cpu = (lambda x: None if x is None else x.cpu())
        return {'lq': cpu(self.lq), 'gt': cpu(self.gt), 'filled': self.filled}

    def load_state_dict(self, state, device):
        if state['lq'] is not None and state['lq'].size(0) != self.size:
            raise OptionsError(f'degradation.queue_size: {self.size}, but the training state to resume holds a pool of '
                               f'{state["lq"].size(0)} pairs; resume with the queue_size it was saved with')
        move = (lambda x: None if x is None else x.to(device))
        self.lq, self.gt, self.filled = move(state['lq']), move(state['gt']), state['filled']


class RealESRGANDegradation:
    """Training pairs from RealESRGANDataset's batches: blur, random resize, Gaussian or Poisson noise, JPEG; the
    same again (the blur with probability ``second_blur_prob``) with the resize aimed at the LR size; then
    [resize to LR size + sinc filter] and JPEG in random order; the LR rounded to 8 bits, an aligned random crop
    of ``gt_size``, the pool."""

    options = REALESRGAN_OPTIONS

    def __init__(self, opt, scale, device):
        self.opt = {**REALESRGAN_DEFAULTS, **{k: v for k, v in opt.items() if k != 'type'}}
        self.scale = scale
        self.jpeg = DiffJPEG(differentiable=False).to(device)
        self.usm = USMSharp().to(device)
        self.pool = TrainingPairPool(self.opt['queue_size'])
        self.device = device

    @torch.no_grad()
    def __call__(self, batch):
        """(lq, gt) of a RealESRGANDataset batch (``gt``, ``kernel1``, ``kernel2``, ``sinc_kernel``)."""
        gt = _random_crop(batch['gt'], self.opt['degrade_size']).to(self.device)
        if self.opt['gt_usm']:
            gt = self.usm(gt)
        lq = self.degrade(gt, *(batch[key].to(self.device) for key in ('kernel1', 'kernel2', 'sinc_kernel')))
        gt, lq = paired_random_crop(gt, lq, self.opt['gt_size'], self.scale)
        lq, gt = self.pool.exchange(lq, gt)
        return lq.contiguous(), gt

    def degrade(self, hr, kernel1, kernel2, sinc_kernel):
        """The LR of ``hr`` (B, 3, H, W), in [0, 1] on the 8-bit grid, of size (H // scale, W // scale)."""
        opt, height, width = self.opt, hr.size(-2), hr.size(-1)
        out = filter2D(hr, kernel1)
        scale = _random_scale(opt['resize_prob'], opt['resize_range'])
        out = F.interpolate(out, scale_factor=scale, mode=random.choice(RESIZE_MODES))
        out = self._noise(out, '')
        out = self._jpeg(out, opt['jpeg_range'])

        if np.random.uniform() < opt['second_blur_prob']:
            out = filter2D(out, kernel2)
        scale = _random_scale(opt['resize_prob2'], opt['resize_range2'])
        size = (int(height / self.scale * scale), int(width / self.scale * scale))
        out = F.interpolate(out, size=size, mode=random.choice(RESIZE_MODES))
        out = self._noise(out, '2')

        lr_size = (height // self.scale, width // self.scale)
        if np.random.uniform() < 0.5:  # the two orders Real-ESRGAN found free of twisted lines
            out = filter2D(F.interpolate(out, size=lr_size, mode=random.choice(RESIZE_MODES)), sinc_kernel)
            out = self._jpeg(out, opt['jpeg_range2'])
        else:
            out = self._jpeg(out, opt['jpeg_range2'])
            out = filter2D(F.interpolate(out, size=lr_size, mode=random.choice(RESIZE_MODES)), sinc_kernel)
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.

    def _noise(self, img, order):
        opt = self.opt
        if np.random.uniform() < opt[f'gaussian_noise_prob{order}']:
            return degradations.random_add_gaussian_noise_pt(img, sigma_range=opt[f'noise_range{order}'], clip=True,
                                                             rounds=False, gray_prob=opt[f'gray_noise_prob{order}'])
        return degradations.random_add_poisson_noise_pt(img, scale_range=opt[f'poisson_scale_range{order}'],
                                                        gray_prob=opt[f'gray_noise_prob{order}'], clip=True,
                                                        rounds=False)

    def _jpeg(self, img, quality_range):
        quality = img.new_zeros(img.size(0)).uniform_(*quality_range)
        return self.jpeg(torch.clamp(img, 0, 1), quality=quality)  # clamped first: JPEG of values past 1 rings

    def state_dict(self):
        return {'pool': self.pool.state_dict()}

    def load_state_dict(self, state):
        self.pool.load_state_dict(state['pool'], self.device)

    @staticmethod
    def check_options(section, opt, scale, batch_size):
        """Each option of ``opt`` (defaults filled) in its range, named ``<section>.<key>`` when not."""
        opt = checked_options(REALESRGAN_OPTIONS, {k: v for k, v in opt.items() if k != 'type'}, section,
                              'Real-ESRGAN', scale=scale, batch_size=batch_size)
        degraded = opt['degrade_size'] or DATASET_OUTPUT_SIZE  # gt_size is cut from it
        require(opt['gt_size'], lambda v: is_int(v) and 0 < v <= degraded and v % scale == 0,
                f'{section}.gt_size', f'a multiple of the scale ({scale}) up to {degraded}, the size of the HR '
                'degraded (degrade_size, else RealESRGANDataset\'s 400)')


def _random_crop(hr, size):
    """A random ``size`` x ``size`` crop of the batch (one place for all of it), or the batch when size is None: degrading
    a 96-px crop instead of the dataset's 400 px costs 1/17 (a CPU run's choice; borders apart, the same degradations)."""
    if size is None:
        return hr
    top, left = random.randint(0, hr.size(-2) - size), random.randint(0, hr.size(-1) - size)
    return hr[..., top:top + size, left:left + size]


def _random_scale(weights, scale_range):
    direction = random.choices(['up', 'down', 'keep'], weights)[0]
    if direction == 'up':
        return np.random.uniform(1, scale_range[1])
    if direction == 'down':
        return np.random.uniform(scale_range[0], 1)
    return 1

