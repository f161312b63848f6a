"""Make the demo's HR/LR pairs from real photographs that ship inside scikit-image.

Training pairs come from one set of photographs, cut into overlapping HR sub-images (small files
decode fast, as BasicSR's DIV2K recipe does); validation pairs are centre crops of other
photographs that training never sees: 128 px (val/, the architecture and sampler benchmarks) and 256 px (val_256/,
the demo's report: large enough for NIQE's 2 x 2 blocks of 96 px after the border crop). LR = MATLAB-style
bicubic (the kernel SR benchmarks use), rounded to 8 bits. For real-world training (BasicSR's RealESRGANDataset,
which reads HR images only and crops or pads them to 400 px) the training photographs are also cut into 400-px
sub-images, listed in a meta_info file. Re-running skips files that exist.

    python scripts/prepare_demo_data.py --out datasets/demo --scale 4
"""
import argparse
import os
from os import path as osp

import cv2
import numpy as np
from basicsr.data.transforms import mod_crop
from skimage import data as skdata

from srdiff_basicsr.data.preparation import centre_crop, write_png
from srdiff_basicsr.ops.resize import imresize_uint8

TRAIN_IMAGES = {
    'astronaut': skdata.astronaut,
    'hubble_deep_field': skdata.hubble_deep_field,
    'immunohistochemistry': skdata.immunohistochemistry,
    'motorcycle': lambda: skdata.stereo_motorcycle()[0],
    'retina': skdata.retina,
}
HELD_OUT_IMAGES = {'chelsea': skdata.chelsea, 'coffee': skdata.coffee, 'rocket': skdata.rocket}


def sub_images(img, size, step, max_count):
    """Overlapping size x size crops; at most max_count of them, evenly spread, so that a large
    photograph does not outweigh the others."""
    h, w = img.shape[:2]
    corners = [(top, left) for top in range(0, h - size + 1, step) for left in range(0, w - size + 1, step)]
    keep = np.linspace(0, len(corners) - 1, min(max_count, len(corners))).round().astype(int)
    for top, left in (corners[i] for i in keep):
        yield f'_{top:04d}_{left:04d}', img[top:top + size, left:left + size]


def write_pair(name, hr, scale, hr_dir, lr_dir):
    hr = mod_crop(hr, scale)
    hr_path, lr_path = osp.join(hr_dir, f'{name}.png'), osp.join(lr_dir, f'{name}.png')
    if osp.exists(hr_path) and osp.exists(lr_path):
        return False
    cv2.imwrite(hr_path, cv2.cvtColor(hr, cv2.COLOR_RGB2BGR))
    cv2.imwrite(lr_path, cv2.cvtColor(imresize_uint8(hr, 1 / scale), cv2.COLOR_RGB2BGR))
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='datasets/demo')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--val-size', type=int, default=128, help='HR size of the held-out centre crops in val/')
    parser.add_argument('--report-size', type=int, default=256,
                        help='HR size of the held-out centre crops in val_<size>/, the demo report\'s test set')
    parser.add_argument('--sub-size', type=int, default=96, help='HR size of the training sub-images')
    parser.add_argument('--sub-step', type=int, default=64, help='stride between training sub-images')
    parser.add_argument('--sub-max', type=int, default=150, help='most sub-images taken from one photograph')
    parser.add_argument('--realesrgan-step', type=int, default=100, help='stride between the 400-px sub-images')
    parser.add_argument('--realesrgan-max', type=int, default=20, help='most 400-px sub-images from one photograph')
    args = parser.parse_args()

    written = 0
    counts = {}
    splits = (('train', TRAIN_IMAGES), ('val', HELD_OUT_IMAGES), (f'val_{args.report_size}', HELD_OUT_IMAGES))
    for split, names in splits:
        hr_dir = osp.join(args.out, split, 'HR')
        lr_dir = osp.join(args.out, split, f'LR_bicubic/X{args.scale}')
        os.makedirs(hr_dir, exist_ok=True)
        os.makedirs(lr_dir, exist_ok=True)
        for name, load in names.items():
            img = np.ascontiguousarray(load()[..., :3])
            if split.startswith('val'):
                pieces = [('', centre_crop(img, args.val_size if split == 'val' else args.report_size))]
            else:
                pieces = sub_images(img, args.sub_size, args.sub_step, args.sub_max)
            for suffix, piece in pieces:
                written += write_pair(name + suffix, piece, args.scale, hr_dir, lr_dir)
                counts[split] = counts.get(split, 0) + 1
        print(f'{split}: {counts[split]} pairs from {len(names)} photographs in {hr_dir} and {lr_dir}')
    print(f'{written} new pairs written (existing ones kept)')
    write_realesrgan_set(osp.join(args.out, 'train'), args.realesrgan_step, args.realesrgan_max)


def write_realesrgan_set(split_dir, step, max_count, size=400):
    """split_dir/HR_sub400/*.png and split_dir/meta_info_HR_sub400.txt (paths relative to split_dir/HR_sub400)."""
    hr_dir = osp.join(split_dir, 'HR_sub400')
    os.makedirs(hr_dir, exist_ok=True)
    names = []
    for name, load in TRAIN_IMAGES.items():
        for suffix, piece in sub_images(np.ascontiguousarray(load()[..., :3]), size, step, max_count):
            names.append(f'{name}{suffix}.png')
            if not osp.exists(osp.join(hr_dir, names[-1])):
                write_png(osp.join(hr_dir, names[-1]), cv2.cvtColor(piece, cv2.COLOR_RGB2BGR))
    with open(osp.join(split_dir, 'meta_info_HR_sub400.txt'), 'w') as f:
        f.write(''.join(f'{name}\n' for name in names))
    print(f'real-world training: {len(names)} HR sub-images of {size} px in {hr_dir}')


if __name__ == '__main__':
    main()
