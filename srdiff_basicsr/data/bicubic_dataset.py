import random
from os import path as osp

import numpy as np
from basicsr.data.data_util import paths_from_folder, paths_from_lmdb
from basicsr.data.transforms import augment, mod_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from srdiff_basicsr.errors import DatasetError
from srdiff_basicsr.data.preparation import centre_crop
from srdiff_basicsr.ops.resize import imresize_uint8


@DATASET_REGISTRY.register()
class BicubicSRDataset(data.Dataset):
    """HR images only; the LR is made on the fly with MATLAB-style bicubic, as SR benchmarks make it.

    Per image: optional centre crop (``center_crop``, the CelebA protocol's 178) and resize
    (``resize_to``, 160; MATLAB bicubic, rounded to 8 bits), then in training a random
    ``gt_size`` crop at offsets aligned to the scale and BasicSR's flips/rotations
    (``use_hflip``, ``use_rot``), then LR = bicubic(HR) by 1/scale rounded to 8 bits. So the pairs
    equal those of ``scripts/prepare_celeba.py`` / ``prepare_div2k.py`` stored on disk, without
    storing the LR. Returns BasicSR's ``{'lq', 'gt', 'lq_path', 'gt_path'}`` (RGB, [0, 1]).

    Options: dataroot_gt, io_backend (disk | lmdb), meta_info_file (optional, one file name per line),
    scale, phase, gt_size, use_hflip, use_rot, center_crop, resize_to.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.scale = opt['scale']
        self.file_client = None
        self.io_backend_opt = dict(opt['io_backend'])
        root = opt.get('dataroot_gt')
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt.update(db_paths=[root], client_keys=['gt'])
            self.paths = paths_from_lmdb(root)
        elif opt.get('meta_info_file'):
            with open(opt['meta_info_file']) as f:
                self.paths = [osp.join(root, line.split(' ')[0].strip()) for line in f if line.strip()]
        else:
            if root is None or not osp.isdir(root):
                raise DatasetError(f'dataset {opt.get("name")!r}: dataroot_gt is not a folder: {root}')
            self.paths = sorted(paths_from_folder(root))
        if not self.paths:
            raise DatasetError(f'dataset {opt.get("name")!r}: no images in {root}')
        gt_size = opt.get('gt_size')
        if gt_size is not None and gt_size % self.scale:
            raise DatasetError(f'dataset {opt.get("name")!r}: gt_size {gt_size} is not a multiple of '
                               f'scale {self.scale}')

    def __len__(self):
        return len(self.paths)

    def _read_hr(self, path):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        try:
            img = imfrombytes(self.file_client.get(path, 'gt'))  # uint8 BGR
        except Exception as error:
            raise DatasetError(f'cannot read {path}: {error!r}') from None
        if img is None:
            raise DatasetError(f'{path}: not a readable image')
        return img

    def _protocol(self, img, path):
        """Centre crop and resize of the dataset's protocol (e.g. CelebA: 178, then 160)."""
        crop = self.opt.get('center_crop')
        if crop:
            h, w = img.shape[:2]
            if h < crop or w < crop:
                raise DatasetError(f'{path}: {w}x{h} is smaller than center_crop {crop}')
            img = centre_crop(img, crop)
        size = self.opt.get('resize_to')
        if size and img.shape[0] != size:
            if img.shape[0] != img.shape[1]:
                raise DatasetError(f'{path}: resize_to needs a square image (set center_crop), got {img.shape[:2]}')
            img = imresize_uint8(img, size / img.shape[0])
        # LR sizes are floor(HR / scale): crop the HR to a multiple, as the preparation scripts do
        return mod_crop(img, self.scale)

    def __getitem__(self, index):
        path = self.paths[index]
        hr = self._protocol(self._read_hr(path), path)
        if self.opt.get('phase') == 'train':
            gt_size = self.opt.get('gt_size')
            if gt_size:
                h, w = hr.shape[:2]
                if h < gt_size or w < gt_size:
                    raise DatasetError(f'{path}: {w}x{h} is smaller than gt_size {gt_size}')
                top = random.randrange(0, (h - gt_size) // self.scale + 1) * self.scale
                left = random.randrange(0, (w - gt_size) // self.scale + 1) * self.scale
                hr = hr[top:top + gt_size, left:left + gt_size]
            hr = augment(hr, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        lr = imresize_uint8(np.ascontiguousarray(hr), 1 / self.scale)
        gt, lq = img2tensor([hr.astype(np.float32) / 255, lr.astype(np.float32) / 255], bgr2rgb=True, float32=True)
        return {'lq': lq, 'gt': gt, 'lq_path': path, 'gt_path': path}

