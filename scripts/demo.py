"""The demo: SRDiff x4 end to end on real photographs shipped with scikit-image, on CPU.

1. make HR/LR pairs (training photographs cut into sub-images; three held-out photographs),
2. pretrain the RRDB encoder with L1 (BasicSR's stock SRModel),
3. train SRDiff on top of the frozen encoder,
4. sample SR images for the held-out photographs through BasicSR's test pipeline,
5. print a table: bicubic vs encoder vs SRDiff (PSNR, SSIM, LR-PSNR; RGB, no border crop).

Run from the repository root (``bash scripts/demo.sh`` sets up the environment first). Everything
is written under the current directory: datasets/demo, experiments/, results/.
"""
import argparse
import glob
import os
import subprocess
import sys
import time
from os import path as osp

import cv2
import numpy as np
import torch
import yaml

import srdiff_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from srdiff_basicsr.metrics import lr_psnr
from srdiff_basicsr.models.weights import read_state_dict
from srdiff_basicsr.ops.resize import imresize

SCALE = 4
ENCODER_OPT = 'options/demo_rrdb_x4.yml'
SRDIFF_OPT = 'options/demo_srdiff_x4.yml'
TEST_OPT = 'options/demo_test_srdiff_x4.yml'
VAL_HR, VAL_LR = 'datasets/demo/val/HR', f'datasets/demo/val/LR_bicubic/X{SCALE}'
REPORT_DIR = 'results/demo_report'


def run(step, args):
    print(f'\n=== {step}: {" ".join(args)}', flush=True)
    start = time.time()
    code = subprocess.run([sys.executable, *args]).returncode
    if code != 0:
        sys.exit(f'=== {step} failed (exit status {code}); see the messages above')
    print(f'=== {step} took {time.time() - start:.0f} s', flush=True)


def to_uint8(tensor01):
    return (tensor01.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def pretrained_encoder():
    with open(ENCODER_OPT) as f:
        opt = yaml.safe_load(f)
    encoder = build_network(opt['network_g'])
    encoder.load_state_dict(read_state_dict(f'experiments/{opt["name"]}/models/net_g_latest.pth'))
    return encoder.eval()


def evaluate(sr_dir):
    """Per-method average PSNR/SSIM/LR-PSNR on the held-out images; writes bicubic/encoder SRs too."""
    encoder = pretrained_encoder()
    bicubic, rrdb, srdiff = 'Bicubic', 'RRDB encoder (L1)', 'SRDiff (100 steps)'
    rows = {bicubic: [], rrdb: [], srdiff: []}
    for hr_path in sorted(glob.glob(osp.join(VAL_HR, '*.png'))):
        name = osp.splitext(osp.basename(hr_path))[0]
        hr = cv2.imread(hr_path)[..., ::-1]  # RGB
        lr = cv2.imread(osp.join(VAL_LR, f'{name}.png'))[..., ::-1]
        lr_t = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).float()[None] / 255
        with torch.no_grad():
            outputs = {bicubic: to_uint8(imresize(lr_t, SCALE)[0]), rrdb: to_uint8(encoder(lr_t)[0])}
        outputs[srdiff] = cv2.imread(glob.glob(osp.join(sr_dir, f'{name}_*.png'))[0])[..., ::-1]
        for method, sr in outputs.items():
            rows[method].append((calculate_psnr(sr, hr, 0), calculate_ssim(sr, hr, 0),
                                 lr_psnr(sr, lr, SCALE)))
            if method != srdiff:
                cv2.imwrite(osp.join(REPORT_DIR, f'{name}_{method.split()[0].lower()}.png'), sr[..., ::-1].copy())
    return {method: np.mean(values, axis=0) for method, values in rows.items()}


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

    os.makedirs(REPORT_DIR, exist_ok=True)
    sr_dir = 'results/demo_test_srdiff_x4/visualization/demo_val'
    table = evaluate(sr_dir)
    lines = [f'Held-out photographs (chelsea, coffee, rocket; {SCALE}x, 128x128 HR crops), RGB, no border crop',
             '', '| method | PSNR (dB) | SSIM | LR-PSNR (dB) |', '|---|---|---|---|']
    lines += [f'| {m} | {p:.2f} | {s:.4f} | {lp:.2f} |' for m, (p, s, lp) in table.items()]
    lines += ['', f'SRDiff images: {sr_dir}/', f'bicubic and encoder images: {REPORT_DIR}/',
              f'total demo time: {time.time() - start:.0f} s']
    report = '\n'.join(lines)
    with open(osp.join(REPORT_DIR, 'report.md'), 'w') as f:
        f.write(report + '\n')
    print('\n' + report)


if __name__ == '__main__':
    main()
