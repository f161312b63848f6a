"""DIV2K (+ Flickr2K) x4 pairs for SRDiff.

Reads the HR images of the releases (``DIV2K_train_HR/``, ``DIV2K_valid_HR/``, optionally
``Flickr2K_HR/``) and writes:

    OUT/train_sub/HR/0001_s001.png            160x160 HR sub-images of DIV2K train (+ Flickr2K)
    OUT/train_sub/LR_bicubic/X4/0001_s001.png 40x40: MATLAB bicubic of the HR sub-image by 1/4
    OUT/valid/HR/0801.png                     the 100 validation images, whole (cropped to a multiple of 4)
    OUT/valid/LR_bicubic/X4/0801.png          MATLAB bicubic by 1/4

Sub-images are taken every ``--step`` pixels, plus one flush with the right and bottom borders, so
every pixel is covered. The releases are only read. Re-running skips source images whose outputs all
exist. ``--lmdb`` also packs each folder into BasicSR's LMDB layout for ``io_backend: lmdb``.

    python scripts/prepare_div2k.py --div2k-dir /data/DIV2K --flickr2k-dir /data/Flickr2K --out datasets/DIV2K_x4
"""
import argparse
import os
import sys
from os import path as osp

import cv2
from basicsr.data.transforms import mod_crop
from PIL import Image
from tqdm import tqdm

from srdiff_basicsr.files import IMAGE_EXTENSIONS
from srdiff_basicsr.data.preparation import pack_split_lmdbs, report, write_png
from srdiff_basicsr.ops.resize import imresize_uint8

SCALE = 4


def corners(length, crop, step):
    """Top-left offsets along one axis: every step, plus one flush with the far border."""
    if length < crop:
        return []
    offsets = list(range(0, length - crop + 1, step))
    if offsets[-1] != length - crop:
        offsets.append(length - crop)
    return offsets


def sub_image_jobs(src, crop, step):
    """[(name, top, left)] of the sub-images of one source image, from its header only."""
    with Image.open(src) as img:
        width, height = img.size
    stem = osp.splitext(osp.basename(src))[0]
    boxes = [(top, left) for top in corners(height, crop, step) for left in corners(width, crop, step)]
    return [(f'{stem}_s{i:03d}.png', top, left) for i, (top, left) in enumerate(boxes, 1)]


def list_images(folder):
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{folder}: no such folder')
    return [osp.join(folder, f) for f in sorted(os.listdir(folder)) if f.lower().endswith(IMAGE_EXTENSIONS)]



def prepare_train(sources, out, crop, step, problems):
    hr_dir, lr_dir = osp.join(out, 'train_sub', 'HR'), osp.join(out, 'train_sub', f'LR_bicubic/X{SCALE}')
    os.makedirs(hr_dir, exist_ok=True)
    os.makedirs(lr_dir, exist_ok=True)
    written = kept = 0
    for src in tqdm(sources, desc='train sub-images', unit='image'):
        try:
            jobs = sub_image_jobs(src, crop, step)
        except Exception as error:
            problems.append(f'{src}: not a readable image ({error})')
            continue
        if all(osp.exists(osp.join(hr_dir, n)) and osp.exists(osp.join(lr_dir, n)) for n, _, _ in jobs):
            kept += len(jobs)
            continue
        img = cv2.imread(src, cv2.IMREAD_COLOR)
        if img is None:
            problems.append(f'{src}: not a readable image')
            continue
        for name, top, left in jobs:
            hr = img[top:top + crop, left:left + crop]
            write_png(osp.join(hr_dir, name), hr)
            write_png(osp.join(lr_dir, name), imresize_uint8(hr, 1 / SCALE))
            written += 1
    return hr_dir, lr_dir, written, kept


def prepare_valid(sources, out, problems):
    hr_dir, lr_dir = osp.join(out, 'valid', 'HR'), osp.join(out, 'valid', f'LR_bicubic/X{SCALE}')
    os.makedirs(hr_dir, exist_ok=True)
    os.makedirs(lr_dir, exist_ok=True)
    written = kept = 0
    for src in tqdm(sources, desc='validation', unit='image'):
        name = f'{osp.splitext(osp.basename(src))[0]}.png'
        if osp.exists(osp.join(hr_dir, name)) and osp.exists(osp.join(lr_dir, name)):
            kept += 1
            continue
        img = cv2.imread(src, cv2.IMREAD_COLOR)
        if img is None:
            problems.append(f'{src}: not a readable image')
            continue
        hr = mod_crop(img, SCALE)
        write_png(osp.join(hr_dir, name), hr)
        write_png(osp.join(lr_dir, name), imresize_uint8(hr, 1 / SCALE))
        written += 1
    return hr_dir, lr_dir, written, kept


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--div2k-dir', required=True, help='folder with DIV2K_train_HR/ and DIV2K_valid_HR/')
    parser.add_argument('--flickr2k-dir', help='folder with Flickr2K_HR/ (optional: DIV2K alone otherwise)')
    parser.add_argument('--out', default='datasets/DIV2K_x4')
    parser.add_argument('--crop', type=int, default=160, help='HR sub-image size')
    parser.add_argument('--step', type=int, default=160, help='stride between sub-images')
    parser.add_argument('--lmdb', action='store_true', help='also write BasicSR LMDBs of every folder')
    args = parser.parse_args()
    if args.crop % SCALE:
        sys.exit(f'error: --crop must be a multiple of {SCALE}, got {args.crop}')

    try:
        train = list_images(osp.join(args.div2k_dir, 'DIV2K_train_HR'))
        if args.flickr2k_dir:
            train += list_images(osp.join(args.flickr2k_dir, 'Flickr2K_HR'))
        valid = list_images(osp.join(args.div2k_dir, 'DIV2K_valid_HR'))
    except FileNotFoundError as error:
        sys.exit(f'error: {error}')

    problems = []
    summary = []
    for title, (hr_dir, lr_dir, written, kept) in (
            (f'train: {len(train)} source images ->', prepare_train(train, args.out, args.crop, args.step, problems)),
            (f'valid: {len(valid)} images ->', prepare_valid(valid, args.out, problems))):
        summary.append(f'{title} {written + kept} pairs ({written} written, {kept} already there) in {hr_dir}, '
                       f'{lr_dir}')
        if args.lmdb:
            pack_split_lmdbs(hr_dir, lr_dir, SCALE)
    report(summary, problems)


if __name__ == '__main__':
    main()
