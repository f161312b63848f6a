"""Evaluation of a sampling model: the validation loop (several samples per image, the images shared across
ranks), the evaluation protocol of a ``val.metrics`` section, and the per-image metrics files of a test run.

Two protocols are in use for SR metrics: the SRDiff paper's (RGB, no border crop) and BasicSR's usual
one (Y channel of YCbCr, ``crop_border`` = scale). ``val.protocol: paper | basicsr`` sets both options
of every metric that has them (PSNR, SSIM); without it the protocol is read off the metric options, so
every table can say which one it used; a section naming both (``psnr`` and ``psnr_y: {type: calculate_psnr,
crop_border: 4, test_y_channel: true}``) is described per group. LR-PSNR, LPIPS and sigma are always computed on RGB.
"""
import csv
import inspect
import math
from os import path as osp

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import METRIC_REGISTRY
from torch.utils.data import default_collate
from tqdm import tqdm

from srdiff_basicsr.errors import DatasetError, OptionsError
from srdiff_basicsr.files import atomic_write
from srdiff_basicsr.host import distributed
from srdiff_basicsr.metrics.niqe_input import niqe_size_problem

PROTOCOL_NAMES = {'paper': 'RGB, no border crop', 'basicsr': 'Y channel, border crop = scale'}


def protocol_settings(protocol, scale):
    if protocol == 'paper':
        return dict(crop_border=0, test_y_channel=False)
    if protocol == 'basicsr':
        return dict(crop_border=scale, test_y_channel=True)
    raise OptionsError(f'val.protocol: must be one of {sorted(PROTOCOL_NAMES)}, got {protocol!r}')


def _metric_parameters(metric_opt):
    try:
        function = METRIC_REGISTRY.get(metric_opt.get('type'))
    except KeyError:
        raise OptionsError(f"val.metrics: no metric named {metric_opt.get('type')!r} is registered") from None
    return inspect.signature(function).parameters


def takes_protocol(metric_opt):
    """Whether a metric has the two options a protocol sets (BasicSR's PSNR and SSIM do)."""
    params = _metric_parameters(metric_opt)
    return 'crop_border' in params and 'test_y_channel' in params


def metric_view(metric_opt):
    """(channel, border crop) a metric measures: PSNR/SSIM's test_y_channel, NIQE's convert_to, their defaults
    where the options leave them; None for a metric without a border crop (it sees the whole image)."""
    params = _metric_parameters(metric_opt)
    if 'crop_border' not in params:
        return None

    def option(key):
        default = params[key].default
        return metric_opt.get(key, None if default is inspect.Parameter.empty else default)

    channel = 'RGB'
    if 'test_y_channel' in params:
        channel = 'Y' if option('test_y_channel') else 'RGB'
    elif 'convert_to' in params:
        channel = {'y': 'Y', 'gray': 'grey'}.get(option('convert_to'), str(option('convert_to')))
    return channel, option('crop_border') or 0


def apply_protocol(metrics_opt, protocol, scale):
    """``metrics_opt`` with the protocol's crop_border/test_y_channel filled in; a metric that sets
    them otherwise is an error (its numbers would not be the protocol's)."""
    settings = protocol_settings(protocol, scale)
    applied = {}
    for name, metric_opt in metrics_opt.items():
        metric_opt = dict(metric_opt)
        if takes_protocol(metric_opt):
            for key, value in settings.items():
                if metric_opt.setdefault(key, value) != value:
                    raise OptionsError(f'val.metrics.{name}.{key} is {metric_opt[key]!r}, but val.protocol '
                                       f'{protocol!r} ({PROTOCOL_NAMES[protocol]}) sets it to {value!r}')
        applied[name] = metric_opt
    return applied


def describe_protocol(metrics_opt, scale):
    """The channel and border crop of every metric that has them: 'paper (RGB, no border crop)' or 'basicsr (Y
    channel, border crop = 4)' when PSNR and SSIM all follow one protocol, else per group of metrics ('psnr, ssim:
    RGB, no border crop; psnr_y, ssim_y: Y channel, border crop 4'); NIQE and the like follow. 'RGB' when none
    has a border crop."""
    views = {name: metric_view(opt) for name, opt in metrics_opt.items()}
    protocol_metrics = [name for name, opt in metrics_opt.items() if takes_protocol(opt)]
    parts, rest = [], [name for name in views if views[name] is not None]
    used = {views[name] for name in protocol_metrics}
    for protocol in PROTOCOL_NAMES:
        settings = protocol_settings(protocol, scale)
        if used == {('Y' if settings['test_y_channel'] else 'RGB', settings['crop_border'])}:
            parts.append(f"{protocol} ({PROTOCOL_NAMES[protocol].replace('scale', str(scale))})")
            rest = [name for name in rest if name not in protocol_metrics]
    groups = {}
    for name in rest:
        groups.setdefault(views[name], []).append(name)
    for (channel, crop), names in groups.items():
        where = f'border crop {crop}' if crop else 'no border crop'
        parts.append(f"{', '.join(names)}: {channel}{' channel' if channel != 'RGB' else ''}, {where}")
    return '; '.join(parts) or 'RGB'


def check_scorable(metrics_opt, shape, image):
    """Before sampling an image whose SR has ``shape``: an error naming the metric that cannot score it."""
    for name, opt in metrics_opt.items():
        problem = niqe_size_problem(opt, shape)
        if problem:
            raise DatasetError(f'val.metrics.{name} cannot score {image}: {problem}')


def score_samples(samples, metrics_opt, hr_img=None, lr_img=None):
    """Each metric averaged over the SR samples of one image (uint8, BasicSR's metric data; the LR goes
    to the metrics as ``lq``), and ``sigma``: the per-pixel standard deviation across the samples on the
    0-255 scale (population std), averaged over pixels; 0 for a single sample."""
    data = {key: value for key, value in (('img2', hr_img), ('lq', lr_img)) if value is not None}
    scores = {name: float(np.mean([calculate_metric({**data, 'img': sr}, opt) for sr in samples]))
              for name, opt in metrics_opt.items()}
    scores['sigma'] = float(np.stack(samples).astype(np.float64).std(axis=0).mean()) if len(samples) > 1 else 0.
    return scores


def write_metrics_csv(path, records, columns):
    """One row per image: ``image`` then ``columns`` (each the mean over the image's samples)."""
    with atomic_write(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', *columns])
        for record in records:
            writer.writerow([record['image'], *(_number(record[column]) for column in columns)])


def write_summary(path, title, lines, means):
    """A small Markdown file: a title, a few 'key: value' lines, and the table of mean metrics."""
    text = [f'# {title}', '', *(f'- {line}' for line in lines), '', '| metric | mean |', '|---|---|']
    text += [f'| {name} | {_number(value)} |' for name, value in means.items()]
    with atomic_write(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(text) + '\n')


def _number(value):
    return 'inf' if math.isinf(value) else f'{value:.6f}'


class SampledValidation:
    """BasicSR's validation and test of a model whose ``pipeline`` samples SR images from ``self.lq``: a mixin
    before BasicSR's model class, which keeps the best-metric bookkeeping and logging."""

    def test(self):
        self.output = self.pipeline(self.lq)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.evaluate(dataloader, current_iter, tb_logger, save_img)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.evaluate(dataloader, current_iter, tb_logger, save_img)  # every rank takes a share of the images

    def evaluate(self, dataloader, current_iter, tb_logger, save_img):
        """BasicSR's validation loop, plus: ``val.num_samples`` samples per image and ``sigma``,
        ``val.protocol``, the images split across ranks (rank r takes images r, r + world_size, ...;
        the metrics are gathered, so the numbers do not depend on the number of processes), and, in a
        test run, per-image metrics and a summary in ``results/<name>/``."""
        val_opt = self.opt['val']
        dataset, scale = dataloader.dataset, self.opt['scale']
        dataset_name = dataset.opt['name']
        metrics_opt = val_opt.get('metrics') or {}
        if val_opt.get('protocol'):
            metrics_opt = apply_protocol(metrics_opt, val_opt['protocol'], scale)
        metrics_opt = {name: {'device': str(self.device), **opt} if opt.get('type') == 'calculate_lpips' else opt
                       for name, opt in metrics_opt.items()}  # LPIPS on the model's device unless told
        num_samples = val_opt.get('num_samples', 1)
        seed = val_opt.get('seed', self.opt.get('manual_seed'))
        rank, world_size = get_dist_info()
        indices = range(rank, len(dataset), world_size)
        pbar = tqdm(total=len(indices), unit='image') if val_opt.get('pbar', False) and rank == 0 else None
        records = []
        for index in indices:
            # noise seeded per image: the same samples whatever the split across ranks
            generator = None if seed is None else torch.Generator(self.device).manual_seed(seed + index)
            records.append(self._evaluate_image(default_collate([dataset[index]]), index, generator, metrics_opt,
                                                num_samples, dataset_name, current_iter, save_img))
            if pbar:
                pbar.update(1)
                pbar.set_description(f'Test {records[-1]["image"]}')
        if pbar:
            pbar.close()
        records = sorted(distributed.gather_to_all(records), key=lambda record: record['index'])
        columns = list(metrics_opt) + (['sigma'] if num_samples > 1 else [])
        if not records or not columns:
            return
        self.metric_results = {column: sum(r[column] for r in records) / len(records) for column in columns}
        self._initialize_best_metric_results(dataset_name)
        if num_samples > 1:
            self.best_metric_results[dataset_name].setdefault('sigma', dict(better='higher', val=float('-inf'),
                                                                            iter=-1))
        for name, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, name, value, current_iter)
        protocol = describe_protocol(metrics_opt, scale)
        get_root_logger().info(f'Validation {dataset_name}: {len(records)} images x {num_samples} sample(s), '
                               f'protocol: {protocol}')
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        if not self.opt['is_train'] and rank == 0:
            self._write_metrics(dataset_name, records, columns, protocol, num_samples, seed)

    def _evaluate_image(self, data, index, generator, metrics_opt, num_samples, dataset_name, current_iter,
                        save_img):
        """Metrics of one image, each averaged over its samples, and their sigma."""
        img_name = osp.splitext(osp.basename(data['lq_path'][0]))[0]
        scale = self.opt['scale']
        check_scorable(metrics_opt, (data['lq'].shape[2] * scale, data['lq'].shape[3] * scale),
                       f'{dataset_name}/{img_name}')
        self.feed_data(data)
        samples = self.pipeline(self.lq.expand(num_samples, -1, -1, -1), generator=generator)
        sr_imgs = [tensor2img(sample) for sample in samples]
        hr_img = tensor2img(self.gt) if hasattr(self, 'gt') else None
        if hasattr(self, 'gt'):
            del self.gt
        if save_img:
            for k, sr_img in enumerate(sr_imgs):
                imwrite(sr_img, self._visualization_path(dataset_name, img_name, current_iter, k))
        return {'index': index, 'image': img_name, **score_samples(sr_imgs, metrics_opt, hr_img, tensor2img(self.lq))}

    def _write_metrics(self, dataset_name, records, columns, protocol, num_samples, seed):
        results = self.opt['path']['results_root']
        write_metrics_csv(osp.join(results, f'metrics_{dataset_name}.csv'), records, columns)
        lines = [f'protocol: {protocol}', f'images: {len(records)}', f'samples per image: {num_samples}',
                 f'sampler: {self.pipeline.describe()}, seed {seed}',
                 f"tiles: {self.pipeline.tile_opt or 'none (whole image)'}, colour fix: {self.pipeline.colour_fix}",
                 f"weights: {self.opt['path'].get('pretrain_network_g')}"]
        write_summary(osp.join(results, f'summary_{dataset_name}.md'), f"{self.opt['name']} on {dataset_name}",
                      lines, self.metric_results)

    def _visualization_path(self, dataset_name, img_name, current_iter, sample_index):
        """BasicSR's file names; samples after the first get ``_s<k>``."""
        extra = f'_s{sample_index}' if sample_index else ''
        if self.opt['is_train']:
            return osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}{extra}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}{extra}.png')
