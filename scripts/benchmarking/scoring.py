"""The metric options of the paper's tables: PSNR, SSIM (under a protocol), LPIPS, LR-PSNR; and ST-LPIPS, the
perceptual column that works offline."""
from srdiff_basicsr.metrics.lpips_metric import lpips_network
from srdiff_basicsr.metrics.stlpips_metric import stlpips_network
from srdiff_basicsr.models.evaluation import apply_protocol

# (metric key, column title, number format) of the report tables, in the paper's order
METRIC_COLUMNS = [('psnr', 'PSNR (dB) ↑', '.2f'), ('ssim', 'SSIM ↑', '.4f'), ('lpips', 'LPIPS ↓', '.3f'),
                  ('stlpips', 'ST-LPIPS ↓', '.3f'), ('lr_psnr', 'LR-PSNR (dB) ↑', '.2f'), ('sigma', 'sigma', '.2f')]


def paper_metrics(scale, protocol='paper', lpips='alex', device='cpu', lpips_random_trunk=False):
    """(metric options, notes): LPIPS or ST-LPIPS is left out, with the reason in the notes, when its weights are
    missing."""
    metrics = {'psnr': {'type': 'calculate_psnr'}, 'ssim': {'type': 'calculate_ssim'},
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
    return apply_protocol(metrics, protocol, scale), notes
