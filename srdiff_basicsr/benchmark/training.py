"""Training runs of the demo comparisons: train (or reuse) an experiment, read its iteration time."""
import glob
import re
import subprocess
import sys
from os import path as osp

import numpy as np


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
