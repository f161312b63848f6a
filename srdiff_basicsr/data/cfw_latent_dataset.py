import os
import random
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from srdiff_basicsr.errors import DatasetError
from srdiff_basicsr.files import is_image_name
from srdiff_basicsr.inference.cfw_data import FOLDERS


@DATASET_REGISTRY.register()
class CFWLatentDataset(data.Dataset):
    """What StableSR's CFW stage trains on: per image, the LR upsampled to the HR size as the first stage's VAE
    encoded it (``inputs/<stem>.png``), the HR (``gts/<stem>.png``) and the first stage's sampled latent, scaled by
    the VAE's scale factor (``latents/<stem>.npy``, (1, C, H/f, W/f) or (C, H/f, W/f)), the layout of the official
    ``generate_vqgan_data.py`` that ``scripts/generate_cfw_data.py`` writes.

    Options: dataroot (that folder); latent_factor (f, the VAE's pixels per latent pixel: 8); gt_size (a training
    crop of the HR side, a multiple of f, taken at the same place in all three; default: whole images, as the
    official). Disk only. Gives lq, gt (3, H, W) RGB in [0, 1], latent (C, H/f, W/f), lq_path, gt_path.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt, self.name, root = opt, opt.get('name'), opt.get('dataroot')  # BasicSR's loops read opt['name']
        self.factor, self.gt_size = opt.get('latent_factor', 8), opt.get('gt_size')
        if self.gt_size is not None and (not isinstance(self.gt_size, int) or self.gt_size % self.factor):
            raise DatasetError(f'dataset {self.name!r}: gt_size must be a multiple of latent_factor {self.factor}, '
                               f'got {self.gt_size!r}')
        stems = {}
        for key, folder in FOLDERS.items():
            where = osp.join(str(root), folder)
            if not osp.isdir(where):
                raise DatasetError(f'dataset {self.name!r}: {where} is not a folder (dataroot must hold '
                                   f'{", ".join(FOLDERS.values())}, as scripts/generate_cfw_data.py writes them)')
            wanted = (lambda n: n.endswith('.npy')) if key == 'latent' else is_image_name
            stems[key] = {osp.splitext(n)[0]: osp.join(where, n) for n in os.listdir(where) if wanted(n)}
        common = set.intersection(*(set(s) for s in stems.values()))
        unmatched = sorted(set.union(*(set(s) for s in stems.values())) - common)
        if unmatched or not common:
            raise DatasetError(f'dataset {self.name!r}: {root}: ' + (
                f'{len(unmatched)} image(s) not in all of {", ".join(FOLDERS.values())}: {", ".join(unmatched[:6])}'
                if unmatched else 'no images'))
        self.items = [{key: stems[key][stem] for key in FOLDERS} for stem in sorted(common)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        item = self.items[index]
        lq, gt = (self._image(item[key]) for key in ('lq', 'gt'))
        latent = torch.from_numpy(np.load(item['latent']).astype(np.float32))
        latent = latent[0] if latent.ndim == 4 else latent
        f = self.factor
        if lq.shape != gt.shape or latent.ndim != 3 or tuple(latent.shape[-2:]) != (gt.shape[1] // f,
                                                                                    gt.shape[2] // f) \
                or gt.shape[1] % f or gt.shape[2] % f:
            raise DatasetError(f'dataset {self.name!r}: {item["gt"]} is {tuple(gt.shape[1:])}, {item["lq"]} '
                               f'{tuple(lq.shape[1:])} and {item["latent"]} {tuple(latent.shape)}: the images must '
                               f'be the same size, a multiple of {f}, and the latent (C, H/{f}, W/{f})')
        if self.gt_size:
            h, w = latent.shape[-2:]
            side = self.gt_size // f
            if side > min(h, w):
                raise DatasetError(f'dataset {self.name!r}: gt_size {self.gt_size} is larger than {item["gt"]} '
                                   f'{tuple(gt.shape[1:])}')
            top, left = random.randint(0, h - side), random.randint(0, w - side)
            latent = latent[:, top:top + side, left:left + side]
            lq, gt = (x[:, top * f:(top + side) * f, left * f:(left + side) * f] for x in (lq, gt))
        return {'lq': lq, 'gt': gt, 'latent': latent, 'lq_path': item['lq'], 'gt_path': item['gt']}

    def _image(self, path):
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f'dataset {self.name!r}: {path} is not a readable image')
        return img2tensor(image.astype(np.float32) / 255.0, bgr2rgb=True, float32=True)
