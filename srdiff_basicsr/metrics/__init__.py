import srdiff_basicsr.host.basicsr_setup  # noqa: F401  (BasicSR fixed and our archs registered before these modules import it)
from srdiff_basicsr.metrics.lpips_metric import calculate_lpips, lpips_network
from srdiff_basicsr.metrics.lr_psnr import calculate_lr_psnr, lr_psnr
from srdiff_basicsr.metrics.niqe_input import niqe_size_problem
from srdiff_basicsr.metrics.pyiqa_metrics import calculate_clipiqa, calculate_musiq, pyiqa_network, pyiqa_unavailable
from srdiff_basicsr.metrics.stlpips_metric import calculate_stlpips, stlpips_network

__all__ = ['calculate_clipiqa', 'calculate_lpips', 'calculate_lr_psnr', 'calculate_musiq', 'calculate_stlpips',
           'lpips_network', 'lr_psnr', 'niqe_size_problem', 'pyiqa_network', 'pyiqa_unavailable', 'stlpips_network']
