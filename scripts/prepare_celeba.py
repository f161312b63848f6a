"""CelebA x8 pairs for SRDiff from the aligned CelebA release.

Reads ``img_align_celeba/*.jpg`` (178x218) and ``list_eval_partition.txt`` (0 train, 1 val, 2 test)
and writes, for the official train split and the first ``--test-count`` (5,000) images of the test
split:

    OUT/train/HR/000001.png                160x160: centre crop 178x178, MATLAB bicubic to 160
    OUT/train/LR_bicubic/X8/000001.png     20x20: MATLAB bicubic of the HR by 1/8
    OUT/test5000/HR, OUT/test5000/LR_bicubic/X8

(``options/train_*_celeba*.yml`` and ``test_srdiff_celeba.yml`` read these folders.) Re-running skips
pairs that exist. ``--lmdb`` also packs each folder into BasicSR's LMDB layout (``HR.lmdb``,
``LR_bicubic_X8.lmdb`` beside the folders, with meta_info.txt) for ``io_backend: lmdb``.

    python scripts/prepare_celeba.py --celeba-dir /data/CelebA --out datasets/CelebA
"""
import argparse
import os
import sys
from os import path as osp

import cv2
from tqdm import tqdm

from srdiff_basicsr.data.preparation import centre_crop, pack_split_lmdbs, report, write_png
from srdiff_basicsr.ops.resize import imresize_uint8

CROP, HR_SIZE, SCALE = 178, 160, 8
SPLITS = {'train': '0', 'test': '2'}


def read_partition(path):
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file (list_eval_partition.txt of the CelebA release)')
    splits = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in '012':
                raise ValueError(f'{path}, line {number}: expected "<image> <0|1|2>", got {line.strip()!r}')
            splits.setdefault(fields[1], []).append(fields[0])
    return splits




def make_pair(src, hr_path, lr_path):
    """Writes the HR/LR pair of one aligned CelebA image; returns None or a problem."""
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    if img is None:
        return f'{src}: missing or not a readable image'
    h, w = img.shape[:2]
    if h < CROP or w < CROP:
        return f'{src}: {w}x{h} is smaller than the {CROP}x{CROP} crop'
    hr = imresize_uint8(centre_crop(img, CROP), HR_SIZE / CROP)
    assert hr.shape[:2] == (HR_SIZE, HR_SIZE), hr.shape
    write_png(hr_path, hr)
    write_png(lr_path, imresize_uint8(hr, 1 / SCALE))
    return None



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--celeba-dir', required=True,
                        help='folder with img_align_celeba/ and list_eval_partition.txt')
    parser.add_argument('--out', default='datasets/CelebA')
    parser.add_argument('--test-count', type=int, default=5000, help='first N test images for evaluation')
    parser.add_argument('--lmdb', action='store_true', help='also write BasicSR LMDBs of every folder')
    args = parser.parse_args()

    try:
        splits = read_partition(osp.join(args.celeba_dir, 'list_eval_partition.txt'))
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    image_dir = osp.join(args.celeba_dir, 'img_align_celeba')
    jobs = {
        'train': splits.get(SPLITS['train'], []),
        f'test{args.test_count}': splits.get(SPLITS['test'], [])[:args.test_count],
    }
    summary, problems = [], []
    for split, names in jobs.items():
        hr_dir, lr_dir = osp.join(args.out, split, 'HR'), osp.join(args.out, split, f'LR_bicubic/X{SCALE}')
        os.makedirs(hr_dir, exist_ok=True)
        os.makedirs(lr_dir, exist_ok=True)
        written = skipped = 0
        for name in tqdm(names, desc=split, unit='image'):
            stem = osp.splitext(name)[0]
            hr_path, lr_path = osp.join(hr_dir, f'{stem}.png'), osp.join(lr_dir, f'{stem}.png')
            if osp.exists(hr_path) and osp.exists(lr_path):
                skipped += 1
                continue
            problem = make_pair(osp.join(image_dir, name), hr_path, lr_path)
            if problem:
                problems.append(problem)
            else:
                written += 1
        if args.lmdb:
            pack_split_lmdbs(hr_dir, lr_dir, SCALE)
        summary.append(f'{split}: {len(names)} pairs ({written} written, {skipped} already there) in {hr_dir}, '
                       f'{lr_dir}')
    report(summary, problems)


if __name__ == '__main__':
    main()
