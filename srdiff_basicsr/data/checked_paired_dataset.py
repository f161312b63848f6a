import os
from os import path as osp

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from PIL import Image

from srdiff_basicsr.errors import DatasetError
from srdiff_basicsr.files import IMAGE_EXTENSIONS

CHECKS = ('full', 'headers', 'off')


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """BasicSR's ``PairedImageDataset`` (same options, same samples) that checks its data first.

    Stock BasicSR fails late and vaguely on bad data: a missing folder or a stray non-image file
    becomes an assertion about counts, an unreadable image an ``AttributeError`` inside a
    DataLoader worker, an LR/HR size mismatch is silently cropped away at validation. Here, with
    the disk backend, every pair is checked at start-up and each problem is reported with its file:
    missing or unequal folders, files that are not images, unreadable, truncated or damaged images,
    and HR sizes that are not ``scale`` times the LR size (``floor``, as MATLAB's imresize makes LR
    from HR sizes that are not multiples of the scale). ``check_pairs``: ``full`` (default; every
    image decoded, which catches truncated files: 0.7 s per 1,000 pairs of 160x160 / 40x40 PNGs on a
    2-core CPU, so about 7 s for 10,000), ``headers`` (sizes and formats only: 0.06 s per 1,000, misses
    truncation) or ``off`` (``true``/``false`` of earlier option files mean ``full``/``off``). Pairs are
    sorted by HR path (BasicSR keeps the directory order, which depends on the file system).

    Images are read as BasicSR reads them (OpenCV, colour): grayscale is replicated to three
    channels, an alpha channel is dropped and 16-bit images are reduced to 8 bits.
    """

    def __init__(self, opt):
        check = opt.pop('check_pairs', 'full')
        self.check_pairs = {True: 'full', False: 'off'}[check] if isinstance(check, bool) else check  # 1.x files
        if self.check_pairs not in CHECKS:
            raise DatasetError(f'dataset {opt.get("name")!r}: check_pairs must be one of {CHECKS}, '
                               f'got {self.check_pairs!r}')
        disk = opt['io_backend']['type'] == 'disk'
        if disk:
            for key in ('dataroot_lq', 'dataroot_gt'):
                folder = opt.get(key)
                if folder is None or not osp.isdir(folder):
                    raise DatasetError(f'dataset {opt.get("name")!r}: {key} is not a folder: {folder}')
            if opt.get('meta_info_file') is None:
                self._check_same_names(opt)
        super().__init__(opt)
        # BasicSR lists folders in directory order, which differs between file systems: sort, so that
        # image i (and its sampling seed, val.seed + i) is the same everywhere
        self.paths = sorted(self.paths, key=lambda pair: pair['gt_path'])
        if disk and self.check_pairs != 'off':
            problems = [p for p in map(self._pair_problem, self.paths) if p]
            if problems:
                shown = '\n  '.join(problems[:10])
                more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
                raise DatasetError(f'dataset {opt.get("name")!r}: {len(problems)} bad image pair(s):\n  {shown}{more}')

    def _check_same_names(self, opt):
        tmpl = opt.get('filename_tmpl', '{}')
        lq_dir, gt_dir = opt['dataroot_lq'], opt['dataroot_gt']
        lq_files, gt_files = sorted(os.listdir(lq_dir)), sorted(os.listdir(gt_dir))
        if not gt_files:
            raise DatasetError(f'dataset {opt.get("name")!r}: no images in {gt_dir}')
        strays = [osp.join(folder, f) for folder, files in ((lq_dir, lq_files), (gt_dir, gt_files)) for f in files
                  if not f.lower().endswith(IMAGE_EXTENSIONS) or not osp.isfile(osp.join(folder, f))]
        if strays:
            raise DatasetError(f'dataset {opt.get("name")!r}: not image files (move them out of the folder): '
                               + ', '.join(strays[:10]))
        expected_lq = {f'{tmpl.format(osp.splitext(f)[0])}{osp.splitext(f)[1]}' for f in gt_files}
        missing_lq, extra_lq = sorted(expected_lq - set(lq_files)), sorted(set(lq_files) - expected_lq)
        if missing_lq or extra_lq:
            lines = []
            if missing_lq:
                lines.append(f'{len(missing_lq)} HR image(s) without LR in {lq_dir}: {", ".join(missing_lq[:5])}')
            if extra_lq:
                lines.append(f'{len(extra_lq)} LR image(s) without HR in {gt_dir}: {", ".join(extra_lq[:5])}')
            raise DatasetError(f'dataset {opt.get("name")!r}: LR and HR folders do not match '
                               f'({len(lq_files)} LR, {len(gt_files)} HR files):\n  ' + '\n  '.join(lines))

    def _pair_problem(self, pair):
        sizes = []
        for key in ('lq_path', 'gt_path'):
            try:
                with Image.open(pair[key]) as img:
                    sizes.append(img.size)
                    if self.check_pairs == 'full':
                        img.load()  # a truncated file fails here, not in a DataLoader worker
            except FileNotFoundError:
                return f'{pair[key]}: missing'
            except Exception as error:
                return f'{pair[key]}: not a readable image ({error})'
        (w_lq, h_lq), (w_gt, h_gt) = sizes
        s = self.opt['scale']
        if not (w_lq * s <= w_gt < (w_lq + 1) * s and h_lq * s <= h_gt < (h_lq + 1) * s):
            return (f'{pair["gt_path"]} is {w_gt}x{h_gt}, but {pair["lq_path"]} is {w_lq}x{h_lq}: '
                    f'at scale {s} the HR should be {w_lq * s}x{h_lq * s}')
        return None

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except Exception as error:  # e.g. a file changed or broke after start-up
            pair = self.paths[index]
            get_root_logger().error(f'failed to load pair {pair["lq_path"]} / {pair["gt_path"]}: {error!r}')
            raise DatasetError(f'cannot load the image pair {pair["lq_path"]} / {pair["gt_path"]}: {error!r}') from None
