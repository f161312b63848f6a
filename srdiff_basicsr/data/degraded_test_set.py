"""A fixed, seeded test set of real-world degradations: each HR image of a folder and its LR made by a run's
``degradation`` with kernels drawn as its RealESRGANDataset draws them, written as a paired folder (HR/, LR/) that
validation and ``basicsr.test`` read with a paired dataset."""
import os
import tempfile
from os import path as osp

import cv2
import torch
from basicsr.data.realesrgan_dataset import RealESRGANDataset
from basicsr.data.transforms import mod_crop
from basicsr.utils import img2tensor, set_random_seed, tensor2img

from srdiff_basicsr.data.degradation import build_degradation, check_realesrgan_dataset, degradation_class
from srdiff_basicsr.data.preparation import write_png
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.files import is_image_name


def degrade_folder(hr_dir, out_dir, opt, seed=0):
    """``out_dir``/HR/<name>.png (the image cropped to a multiple of the scale) and ``out_dir``/LR/<name>.png (its
    degradation, without the training pool or crop; the HR not sharpened). Image i uses seed + i, so a rerun skips
    the pairs that exist and makes the same ones. Returns the number of pairs written."""
    degradation, scale = opt.get('degradation'), opt.get('scale')
    train_opt = (opt.get('datasets') or {}).get('train') or {}
    if not degradation or train_opt.get('type') != 'RealESRGANDataset':
        raise OptionsError('degrade_images: the options need `degradation` and a RealESRGANDataset as datasets.train '
                           '(its kernel options are used)')
    degradation_class(degradation).check_options('degradation', degradation, scale, 1)
    names = sorted(n for n in os.listdir(hr_dir) if is_image_name(n))
    if not names:
        raise OptionsError(f'degrade_images: no images in {hr_dir}')
    stage = build_degradation(degradation, scale, torch.device('cpu'))
    os.makedirs(osp.join(out_dir, 'HR'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'LR'), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        meta_info = osp.join(tmp, 'meta_info.txt')
        with open(meta_info, 'w') as f:
            f.write(''.join(f'{name}\n' for name in names))
        kernel_opt = {**train_opt, 'dataroot_gt': hr_dir, 'meta_info': meta_info, 'io_backend': {'type': 'disk'},
                      'use_hflip': False, 'use_rot': False}
        check_realesrgan_dataset('train', kernel_opt)
        kernels = RealESRGANDataset(kernel_opt)
        written = 0
        for i, name in enumerate(names):
            stem = osp.splitext(name)[0]
            hr_path, lr_path = osp.join(out_dir, 'HR', f'{stem}.png'), osp.join(out_dir, 'LR', f'{stem}.png')
            if osp.exists(hr_path) and osp.exists(lr_path):
                continue
            hr = mod_crop(cv2.imread(osp.join(hr_dir, name), cv2.IMREAD_COLOR), scale)
            set_random_seed(seed + i)
            item = kernels[i]
            lr = stage.degrade(img2tensor(hr.astype('float32') / 255., bgr2rgb=True)[None],
                               *(item[key][None] for key in ('kernel1', 'kernel2', 'sinc_kernel')))
            write_png(hr_path, hr)
            write_png(lr_path, tensor2img(lr))  # tensor2img: RGB [0, 1] -> BGR uint8, as cv2 writes
            written += 1
    return written
