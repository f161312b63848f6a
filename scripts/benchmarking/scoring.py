"""The metrics of the report tables: PSNR and SSIM both on RGB at full size (the SRDiff paper's) and on Y with a
border crop (BasicSR's, the papers of real-world SR), LPIPS, ST-LPIPS (the perceptual column that works offline),
NIQE, MUSIQ and CLIPIQA (no reference; the last two where pyiqa and its weights are on disk), LR-PSNR."""
from srdiff_basicsr.metrics.lpips_metric import lpips_network
from srdiff_basicsr.metrics.niqe_input import niqe_size_problem
from srdiff_basicsr.metrics.pyiqa_metrics import PYIQA_WEIGHTS, pyiqa_unavailable
from srdiff_basicsr.metrics.stlpips_metric import stlpips_network
from srdiff_basicsr.models.evaluation import describe_protocol

# (metric key, column title, number format) of the report tables
METRIC_COLUMNS = [('psnr', 'PSNR (dB) ↑', '.2f'), ('ssim', 'SSIM ↑', '.4f'), ('psnr_y', 'PSNR-Y (dB) ↑', '.2f'),
                  ('ssim_y', 'SSIM-Y ↑', '.4f'), ('lpips', 'LPIPS ↓', '.3f'), ('stlpips', 'ST-LPIPS ↓', '.3f'),
                  ('niqe', 'NIQE ↓', '.2f'), ('musiq', 'MUSIQ ↑', '.2f'), ('clipiqa', 'CLIPIQA ↑', '.3f'),
                  ('lr_psnr', 'LR-PSNR (dB) ↑', '.2f'), ('sigma', 'sigma', '.2f')]
# the columns a test set without HR images still has: no-reference metrics, LR consistency, diversity
NO_REFERENCE = ('niqe', 'musiq', 'clipiqa', 'lr_psnr', 'sigma')


def benchmark_metrics(scale, crop_border=None, lpips='alex', device='cpu', lpips_random_trunk=False, shape=None):
    """(metric options, notes): the Y-channel metrics and NIQE crop ``crop_border`` pixels (default: the scale, as
    BasicSR's options do); a metric whose package or weights are missing, or that cannot score SR images of
    ``shape`` (the smallest (H, W) when given), is left out, with one note saying why."""
    crop = scale if crop_border is None else crop_border
    metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
               'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False},
               'psnr_y': {'type': 'calculate_psnr', 'crop_border': crop, 'test_y_channel': True},
               'ssim_y': {'type': 'calculate_ssim', 'crop_border': crop, 'test_y_channel': True},
               'niqe': {'type': 'calculate_niqe', 'crop_border': crop},
               'lr_psnr': {'type': 'calculate_lr_psnr', 'scale': scale}}
    notes = []
    if lpips != 'off':
        try:
            lpips_network(lpips, device, lpips_random_trunk)
            metrics['lpips'] = {'type': 'calculate_lpips', 'net': lpips, 'device': device,
                                'random_trunk': lpips_random_trunk}
        except FileNotFoundError as error:
            notes.append(f'LPIPS left out: {error}')
    try:
        stlpips_network(device)
        metrics['stlpips'] = {'type': 'calculate_stlpips', 'device': device}
    except FileNotFoundError as error:
        notes.append(f'ST-LPIPS left out: {error}')
    reasons = {}
    for name in PYIQA_WEIGHTS:
        reason = pyiqa_unavailable(name)
        if reason:
            reasons.setdefault(reason, []).append(name.upper())
        else:
            metrics[name] = {'type': f'calculate_{name}', 'device': device}
    notes += [f"{', '.join(names)} left out: {reason}" for reason, names in reasons.items()]
    metrics = {key: metrics[key] for key, _, _ in METRIC_COLUMNS if key in metrics}
    if shape is None:
        return metrics, notes
    metrics, too_small = scorable(metrics, shape)
    return metrics, notes + too_small


def scorable(metrics, shape):
    """(the metrics that can score an SR image of ``shape``, a note for each one left out)."""
    kept, notes = {}, []
    for key, opt in metrics.items():
        problem = niqe_size_problem(opt, shape)
        if problem:
            notes.append(f'{key} left out: {problem}')
        else:
            kept[key] = opt
    return kept, notes


def protocol_line(metrics, scale):
    """The report's statement of what each metric measures on."""
    return f'protocol: {describe_protocol(metrics, scale)}; the other metrics on RGB, whole image'
