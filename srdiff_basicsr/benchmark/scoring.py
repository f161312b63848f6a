"""The paper's metrics for SR samples of one image: PSNR, SSIM (under a protocol), LPIPS, LR-PSNR, sigma."""
import numpy as np
from basicsr.metrics import calculate_metric

from srdiff_basicsr.metrics.lpips_metric import lpips_network
from srdiff_basicsr.models.evaluation import apply_protocol


def paper_metrics(scale, protocol='paper', lpips='alex', device='cpu', lpips_random_trunk=False):
    """(metric options, note): LPIPS is left out, with the reason in the note, when its weights are missing."""
    metrics = {'psnr': {'type': 'calculate_psnr'}, 'ssim': {'type': 'calculate_ssim'},
               'lr_psnr': {'type': 'calculate_lr_psnr', 'scale': scale}}
    note = None
    if lpips != 'off':
        try:
            lpips_network(lpips, device, lpips_random_trunk)
            metrics['lpips'] = {'type': 'calculate_lpips', 'net': lpips, 'device': device,
                                'random_trunk': lpips_random_trunk}
        except FileNotFoundError as error:
            note = f'LPIPS left out: {error}'
    return apply_protocol(metrics, protocol, scale), note


def score_samples(samples, hr_img, lr_img, metrics):
    """Each metric averaged over the uint8 samples, and sigma (0 for a single sample)."""
    scores = {key: float(np.mean([calculate_metric({'img': sr, 'img2': hr_img, 'lq': lr_img}, opt) for sr in samples]))
              for key, opt in metrics.items()}
    scores['sigma'] = float(np.stack(samples).astype(np.float64).std(axis=0).mean()) if len(samples) > 1 else 0.
    return scores
