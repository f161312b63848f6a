"""Measuring a sampling pipeline on held-out image pairs: scores, network evaluations, time and peak memory."""
import glob
import threading
import time
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.utils import tensor2img

from srdiff_basicsr.inference.images import read_image
from srdiff_basicsr.models.evaluation import score_samples


class PeakMemory:
    """Peak memory (MiB) of the block above its start: CUDA's allocator statistics, or the process's
    resident set size polled every 5 ms on CPU."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'

    @staticmethod
    def rss():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * 4096

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        self.start = self.peak = self.rss()
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.mib = (torch.cuda.max_memory_allocated() - self.start) / 2**20
        else:
            self.running = False
            self.thread.join()
            self.mib = (max(self.peak, self.rss()) - self.start) / 2**20


def load_pairs(lr_dir, hr_dir):
    pairs = []
    for hr_path in sorted(glob.glob(osp.join(hr_dir, '*.png'))):
        lr_path = osp.join(lr_dir, osp.basename(hr_path))
        pairs.append((osp.splitext(osp.basename(hr_path))[0], read_image(lr_path).rgb, cv2.imread(hr_path)))
    if not pairs:
        raise SystemExit(f'no PNG images in {hr_dir}; run scripts/prepare_demo_data.py (or bash scripts/demo.sh) first')
    return pairs


def smallest_image(pairs):
    """(H, W): the smallest HR height and width of the pairs."""
    return tuple(min(hr.shape[axis] for _, _, hr in pairs) for axis in (0, 1))


def run_config(pipe, pairs, num_samples, seed, metrics):
    """Mean scores over images, NFE per sample, seconds per image, peak MiB; and the first samples."""
    rows, seconds, peak, firsts = [], 0.0, 0.0, []
    for index, (name, lq, hr_img) in enumerate(pairs):
        lq = lq.to(pipe.device)
        with PeakMemory(pipe.device) as memory:
            start = time.perf_counter()
            samples = pipe(lq.expand(num_samples, -1, -1, -1), seed=seed + index)
            if samples.is_cuda:
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
        peak = max(peak, memory.mib)
        imgs = [tensor2img(sample) for sample in samples]
        firsts.append(samples[:1].cpu())
        rows.append(score_samples(imgs, metrics, hr_img, tensor2img(lq)))
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    return {**means, 'nfe': pipe.nfe, 'seconds': seconds / len(pairs), 'peak_mib': peak}, firsts
