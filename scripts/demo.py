"""The demo: SRDiff x4 end to end on real photographs shipped with scikit-image, on CPU.

1. make HR/LR pairs (training photographs cut into sub-images; three held-out photographs),
2. pretrain the RRDB encoder with L1 (BasicSR's stock SRModel),
3. train SRDiff on top of the frozen encoder,
4. sample SR images for the held-out photographs through BasicSR's test pipeline,
5. benchmark bicubic vs the encoder vs SRDiff (3 samples per image) with ``scripts/benchmark.py``:
   the paper's table (PSNR, SSIM, LPIPS where its weights exist, LR-PSNR, sigma; RGB, no border
   crop) and a comparison grid per image.

Run from the repository root (``bash scripts/demo.sh`` sets up the environment first). Everything
is written under the current directory: datasets/demo, experiments/, results/ (the report in
results/demo_report/report.md).
"""
import argparse
import subprocess
import sys
import time
from os import path as osp

SCALE = 4
ENCODER_OPT = 'options/demo_rrdb_x4.yml'
SRDIFF_OPT = 'options/demo_srdiff_x4.yml'
TEST_OPT = 'options/demo_test_srdiff_x4.yml'
REPORT_DIR = 'results/demo_report'
NUM_SAMPLES = 3


def run(step, args):
    print(f'\n=== {step}: {" ".join(args)}', flush=True)
    start = time.time()
    code = subprocess.run([sys.executable, *args]).returncode
    if code != 0:
        sys.exit(f'=== {step} failed (exit status {code}); see the messages above')
    print(f'=== {step} took {time.time() - start:.0f} s', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--skip-training', action='store_true', help='reuse the models of a previous demo run')
    args = parser.parse_args()
    if args.skip_training and not osp.isfile('experiments/demo_srdiff_x4/models/net_g_latest.pth'):
        sys.exit('--skip-training: no models of a previous demo run in experiments/; run without it first')
    start = time.time()
    run('data', ['scripts/prepare_demo_data.py', '--out', 'datasets/demo', '--scale', str(SCALE)])
    if not args.skip_training:
        run('encoder pretraining (L1, stock SRModel)', ['-m', 'srdiff_basicsr.train', '-opt', ENCODER_OPT])
        run('SRDiff training', ['-m', 'srdiff_basicsr.train', '-opt', SRDIFF_OPT])
    run('SRDiff sampling (BasicSR test pipeline)', ['-m', 'srdiff_basicsr.test', '-opt', TEST_OPT])
    run('benchmark (bicubic, encoder, SRDiff x3 samples)',
        ['scripts/benchmark.py', '-opt', TEST_OPT, '--num-samples', str(NUM_SAMPLES), '--out', REPORT_DIR])
    print(f'\n=== demo finished in {time.time() - start:.0f} s; report: {REPORT_DIR}/report.md')


if __name__ == '__main__':
    main()
