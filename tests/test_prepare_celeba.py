"""scripts/prepare_celeba.py on a small folder laid out like the aligned CelebA release."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize as basicsr_imresize

from srdiff_basicsr.data import CheckedPairedImageDataset
from tests.conftest import REPO, dataset_opt


@pytest.fixture(scope='module')
def celeba(tmp_path_factory):
    """12 aligned-CelebA-sized JPGs (178x218) cut from a real photograph; 6 train, 2 val, 4 test."""
    from skimage import data
    root = tmp_path_factory.mktemp('celeba')
    (root / 'img_align_celeba').mkdir()
    photo = data.astronaut()
    lines = []
    for i in range(12):
        crop = photo[i * 20:i * 20 + 218, i * 25:i * 25 + 178, ::-1]
        cv2.imwrite(str(root / 'img_align_celeba' / f'{i + 1:06d}.jpg'), crop)
        lines.append(f'{i + 1:06d}.jpg {0 if i < 6 else 1 if i < 8 else 2}')
    (root / 'list_eval_partition.txt').write_text('\n'.join(lines) + '\n')
    return root


def prepare(celeba, out, *extra):
    return subprocess.run([sys.executable, 'scripts/prepare_celeba.py', '--celeba-dir', str(celeba), '--out', str(out),
                           '--test-count', '3', *extra], cwd=REPO, capture_output=True, text=True)


def test_layout_counts_and_pairs(celeba, tmp_path):
    result = prepare(celeba, tmp_path / 'CelebA', '--lmdb')
    assert result.returncode == 0, result.stderr
    out = tmp_path / 'CelebA'
    train_hr = sorted(p.name for p in (out / 'train' / 'HR').iterdir())
    assert train_hr == [f'{i:06d}.png' for i in range(1, 7)]  # the official train split only
    assert sorted(p.name for p in (out / 'test3' / 'HR').iterdir()) == ['000009.png', '000010.png', '000011.png']
    assert 'train: 6 pairs (6 written, 0 already there)' in result.stdout
    assert 'test3: 3 pairs (3 written, 0 already there)' in result.stdout

    src = cv2.imread(str(celeba / 'img_align_celeba' / '000001.jpg'))
    hr = cv2.imread(str(out / 'train' / 'HR' / '000001.png'))
    lr = cv2.imread(str(out / 'train' / 'LR_bicubic' / 'X8' / '000001.png'))
    assert hr.shape == (160, 160, 3) and lr.shape == (20, 20, 3)
    expected_hr = np.clip(basicsr_imresize(src[20:198] / 255, 160 / 178), 0, 1) * 255  # centre 178x178 crop
    assert np.abs(hr - expected_hr.round()).max() <= 1
    expected_lr = np.clip(basicsr_imresize(hr / 255, 1 / 8), 0, 1) * 255
    assert np.abs(lr - expected_lr.round()).max() <= 1

    meta = (out / 'train' / 'HR.lmdb' / 'meta_info.txt').read_text().splitlines()
    assert len(meta) == 6 and meta[0].startswith('000001.png (160,160,3)')
    dataset = CheckedPairedImageDataset(dataset_opt('celeba', str(out / 'test3' / 'LR_bicubic' / 'X8'),
                                                    str(out / 'test3' / 'HR'), 'val', scale=8))
    assert len(dataset) == 3 and dataset[0]['gt'].shape == (3, 160, 160)


def test_rerun_skips_what_exists_and_redoes_what_is_missing(celeba, tmp_path):
    out = tmp_path / 'CelebA'
    assert prepare(celeba, out).returncode == 0
    (out / 'train' / 'LR_bicubic' / 'X8' / '000002.png').unlink()
    result = prepare(celeba, out)
    assert result.returncode == 0
    assert 'train: 6 pairs (1 written, 5 already there)' in result.stdout
    assert (out / 'train' / 'LR_bicubic' / 'X8' / '000002.png').is_file()


def test_missing_partition_file_and_broken_images_are_reported(celeba, tmp_path):
    result = subprocess.run([sys.executable, 'scripts/prepare_celeba.py', '--celeba-dir', str(tmp_path), '--out',
                             str(tmp_path / 'o')], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and 'list_eval_partition.txt: no such file' in result.stderr

    broken = tmp_path / 'broken'
    (broken / 'img_align_celeba').mkdir(parents=True)
    (broken / 'list_eval_partition.txt').write_text('000001.jpg 0\n000002.jpg 0\n')
    (broken / 'img_align_celeba' / '000001.jpg').write_bytes(b'not a jpeg')
    result = prepare(broken, tmp_path / 'o2')
    assert result.returncode == 1
    assert '2 image(s) failed' in result.stderr and '000001.jpg: missing or not a readable image' in result.stderr
    assert 'Traceback' not in result.stderr


def test_on_the_fly_lr_equals_the_prepared_pairs(celeba, tmp_path):
    """BicubicSRDataset on the raw release (centre crop 178, resize 160) gives the script's HR and LR."""
    from srdiff_basicsr.data import BicubicSRDataset
    out = tmp_path / 'CelebA'
    assert prepare(celeba, out).returncode == 0
    dataset = BicubicSRDataset(dict(name='celeba_raw', dataroot_gt=str(celeba / 'img_align_celeba'), scale=8,
                                    io_backend=dict(type='disk'), phase='val', center_crop=178, resize_to=160))
    item = dataset[0]
    assert item['gt_path'].endswith('000001.jpg')
    hr = cv2.imread(str(out / 'train' / 'HR' / '000001.png'))[..., ::-1] / 255
    lr = cv2.imread(str(out / 'train' / 'LR_bicubic' / 'X8' / '000001.png'))[..., ::-1] / 255
    assert np.array_equal(item['gt'].permute(1, 2, 0).numpy(), hr.astype(np.float32))
    assert np.array_equal(item['lq'].permute(1, 2, 0).numpy(), lr.astype(np.float32))
