"""Helpers of the dataset preparation scripts (scripts/prepare_*.py)."""
import os
import sys
from os import path as osp

import cv2

from srdiff_basicsr.files import atomic_write


def centre_crop(img, size):
    """The size x size centre of an HWC image (the caller checks it is large enough)."""
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def write_png(path, img):
    """Write via a temporary name, so a killed run never leaves a truncated image that a re-run
    would take as done."""
    with atomic_write(path, keep_extension=True) as tmp:
        if not cv2.imwrite(tmp, img):
            raise OSError(f'cannot write {tmp}')


def pack_lmdb(folder, lmdb_path):
    """BasicSR's LMDB of every image in folder (keys = file stems), unless lmdb_path exists."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    if osp.exists(lmdb_path):
        print(f'{lmdb_path} exists, kept')
        return
    names = sorted(os.listdir(folder))
    make_lmdb_from_imgs(folder, lmdb_path, names, [osp.splitext(n)[0] for n in names], n_thread=1)


def pack_split_lmdbs(hr_dir, lr_dir, scale):
    """LMDBs of one split beside its folders: <split>/HR.lmdb and <split>/LR_bicubic_X<scale>.lmdb."""
    split_dir = osp.dirname(hr_dir)
    pack_lmdb(hr_dir, osp.join(split_dir, 'HR.lmdb'))
    pack_lmdb(lr_dir, osp.join(split_dir, f'LR_bicubic_X{scale}.lmdb'))


def report(summary, problems):
    """Print the per-split summary; exit with status 1 after listing the images that failed."""
    print('\n'.join(summary))
    if problems:
        print(f'{len(problems)} image(s) failed:\n  ' + '\n  '.join(problems), file=sys.stderr)
        sys.exit(1)
