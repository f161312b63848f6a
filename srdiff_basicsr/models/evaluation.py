"""The evaluation protocol of a ``val.metrics`` section, and the per-image metrics files of a test run.

Two protocols are in use for SR metrics: the SRDiff paper's (RGB, no border crop) and BasicSR's usual
one (Y channel of YCbCr, ``crop_border`` = scale). ``val.protocol: paper | basicsr`` sets both options
of every metric that has them (PSNR, SSIM); without it the protocol is read off the metric options, so
every table can say which one it used. LR-PSNR, LPIPS and sigma are always computed on RGB.
"""
import csv
import inspect
import math

import numpy as np
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY

from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.files import atomic_write

PROTOCOL_NAMES = {'paper': 'RGB, no border crop', 'basicsr': 'Y channel, border crop = scale'}


def protocol_settings(protocol, scale):
    if protocol == 'paper':
        return dict(crop_border=0, test_y_channel=False)
    if protocol == 'basicsr':
        return dict(crop_border=scale, test_y_channel=True)
    raise OptionsError(f'val.protocol: must be one of {sorted(PROTOCOL_NAMES)}, got {protocol!r}')


def takes_protocol(metric_opt):
    """Whether a metric has the two options a protocol sets (BasicSR's PSNR and SSIM do)."""
    try:
        function = METRIC_REGISTRY.get(metric_opt.get('type'))
    except KeyError:
        raise OptionsError(f"val.metrics: no metric named {metric_opt.get('type')!r} is registered") from None
    params = inspect.signature(function).parameters
    return 'crop_border' in params and 'test_y_channel' in params


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
    """'paper (RGB, no border crop)', 'basicsr (Y channel, border crop = 4)', or the custom settings."""
    used = {name: (opt.get('crop_border', 0), bool(opt.get('test_y_channel', False)))
            for name, opt in metrics_opt.items() if takes_protocol(opt)}
    for protocol in PROTOCOL_NAMES:
        settings = protocol_settings(protocol, scale)
        if used and set(used.values()) == {(settings['crop_border'], settings['test_y_channel'])}:
            return f"{protocol} ({PROTOCOL_NAMES[protocol].replace('scale', str(scale))})"
    if not used:
        return 'RGB'
    return 'custom (' + ', '.join(f"{name}: {'Y' if y else 'RGB'}, border crop {crop}"
                                  for name, (crop, y) in used.items()) + ')'


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
