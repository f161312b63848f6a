"""The real-world demo: SRDiff trained on Real-ESRGAN's degradations made on the fly vs the demo's bicubic-trained
SRDiff, on the held-out photographs degraded by the same pipeline (seed 0), on CPU.

1. the demo's data, with 400-px training sub-images for BasicSR's RealESRGANDataset;
2. the held-out photographs degraded once (``scripts/degrade_images.py``, seed 0): datasets/demo/val_realesrgan;
3. the bicubic demo's encoder and SRDiff, unless a previous ``scripts/demo.py`` run left them;
4. the encoder pretrained with L1 on the degradations (``DegradedSRModel``, options/demo_rrdb_realesrgan_x4.yml);
5. SRDiff on the degradations with the bicubic SRDiff's budget (options/demo_srdiff_realesrgan_x4.yml);
6. ``scripts/benchmark.py``: both SRDiffs (3 samples of the degradation-trained one, the test pipeline's one of the
   bicubic-trained one), its encoder and bicubic; PSNR, SSIM, ST-LPIPS against the clean HR and LR-PSNR against
   the clean LR; a grid per image. Report: results/demo_realworld_report/report.md.
"""
import sys
import time
from os import path as osp

from demo import ENCODER_OPT, SCALE, SRDIFF_OPT, run

DEGRADED_ENCODER_OPT = 'options/demo_rrdb_realesrgan_x4.yml'
DEGRADED_SRDIFF_OPT = 'options/demo_srdiff_realesrgan_x4.yml'
DEGRADED_TEST_OPT = 'options/demo_test_srdiff_realesrgan_x4.yml'
BICUBIC_ON_DEGRADED_OPT = 'options/demo_test_srdiff_bicubic_on_realesrgan_x4.yml'
REPORT_DIR = 'results/demo_realworld_report'


def main():
    start = time.time()
    run('data', ['scripts/prepare_demo_data.py', '--out', 'datasets/demo', '--scale', str(SCALE)])
    run('degraded held-out set', ['scripts/degrade_images.py', '-opt', DEGRADED_SRDIFF_OPT, '--hr',
                                  'datasets/demo/val/HR', '-o', 'datasets/demo/val_realesrgan', '--seed', '0'])
    if not osp.isfile('experiments/demo_srdiff_x4/models/net_g_latest.pth'):
        run('bicubic encoder pretraining', ['-m', 'srdiff_basicsr.train', '-opt', ENCODER_OPT])
        run('bicubic SRDiff training', ['-m', 'srdiff_basicsr.train', '-opt', SRDIFF_OPT])
    run('encoder pretraining on the degradations (DegradedSRModel)',
        ['-m', 'srdiff_basicsr.train', '-opt', DEGRADED_ENCODER_OPT])
    run('SRDiff training on the degradations', ['-m', 'srdiff_basicsr.train', '-opt', DEGRADED_SRDIFF_OPT])
    run('benchmark on the degraded held-out set',
        ['scripts/benchmark.py', '-opt', DEGRADED_TEST_OPT, '--srdiff-name', 'SRDiff, Real-ESRGAN-trained',
         '--model', f'SRDiff, bicubic-trained={BICUBIC_ON_DEGRADED_OPT}', '--num-samples', '3', '--lr-psnr-from-hr',
         '--out', REPORT_DIR])
    print(f'\n=== real-world demo finished in {time.time() - start:.0f} s; report: {REPORT_DIR}/report.md')


if __name__ == '__main__':
    sys.exit(main())
