"""Training runs of the demo comparisons: their command line, train (or reuse) an experiment, read its
iteration time."""
import argparse
import glob
import re
import subprocess
import sys
from os import path as osp

import numpy as np
import torch

DEMO_ENCODER = 'experiments/demo_rrdb_x4/models/net_g_latest.pth'


def comparison_arguments(description, out, experiments):
    """The command line of a demo comparison (held-out images, samples, seed, --retrain, device, report folder,
    --models: a subset of ``experiments`` to run, all by default); exits when the demo's encoder is missing."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lr-dir', default='datasets/demo/val/LR_bicubic/X4')
    parser.add_argument('--hr-dir', default='datasets/demo/val/HR')
    parser.add_argument('--num-samples', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--retrain', action='store_true')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default=out)
    parser.add_argument('--models', nargs='+', choices=experiments, default=experiments, metavar='EXPERIMENT',
                        help=f'the experiments to train (or reuse) and compare: {", ".join(experiments)}')
    args = parser.parse_args()
    if not osp.isfile(DEMO_ENCODER):
        sys.exit(f'no demo encoder at {DEMO_ENCODER}: run bash scripts/demo.sh first')
    return args


def train(options_file, name, retrain):
    """``python -m srdiff_basicsr.train -opt options_file`` unless experiments/<name> has its final weights
    (and not ``retrain``); exits naming the run when it fails."""
    if retrain or not osp.isfile(f'experiments/{name}/models/net_g_latest.pth'):
        print(f'=== training {name}', flush=True)
        if subprocess.run([sys.executable, '-m', 'srdiff_basicsr.train', '-opt', options_file]).returncode:
            sys.exit(f'training {name} failed; see the messages above')
    else:
        print(f'=== reusing experiments/{name} (--retrain to train it again)', flush=True)


def seconds_per_iteration(name):
    """The median of the iteration times BasicSR logged (``time (data): 0.412 (0.003)``) in the run's newest log
    (the median: a burst of other work on a shared machine barely moves it)."""
    logs = sorted(glob.glob(f'experiments/{name}/train_{name}_*.log'), key=osp.getmtime)
    if not logs:
        return float('nan')
    with open(logs[-1]) as f:
        times = [float(t) for t in re.findall(r'time \(data\): ([\d.]+)', f.read())]
    return float(np.median(times)) if times else float('nan')
