"""scripts/prepare_div2k.py on a small folder laid out like the DIV2K and Flickr2K releases."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize as basicsr_imresize

from srdiff_basicsr.data import CheckedPairedImageDataset
from tests.conftest import REPO, dataset_opt


@pytest.fixture(scope='module')
def releases(tmp_path_factory):
    """DIV2K: 2 train images (400x328), 2 validation images (one not a multiple of 4); Flickr2K: 1 image."""
    from skimage import data
    root = tmp_path_factory.mktemp('releases')
    photo = data.astronaut()[..., ::-1]
    layout = {'DIV2K/DIV2K_train_HR/0001.png': (328, 400), 'DIV2K/DIV2K_train_HR/0002.png': (320, 320),
              'DIV2K/DIV2K_valid_HR/0801.png': (136, 204), 'DIV2K/DIV2K_valid_HR/0802.png': (138, 202),
              'Flickr2K/Flickr2K_HR/000001.png': (160, 170)}
    for i, (name, (h, w)) in enumerate(layout.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), photo[i * 30:i * 30 + h, i * 20:i * 20 + w])
    return root


def prepare(releases, out, *extra):
    return subprocess.run([sys.executable, 'scripts/prepare_div2k.py', '--div2k-dir', str(releases / 'DIV2K'),
                           '--out', str(out), *extra], cwd=REPO, capture_output=True, text=True)


def test_sub_images_cover_every_pixel_and_lr_is_matlab_bicubic(releases, tmp_path):
    out = tmp_path / 'DIV2K_x4'
    result = prepare(releases, out, '--flickr2k-dir', str(releases / 'Flickr2K'), '--lmdb')
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (out / 'train_sub' / 'HR').iterdir())
    # 400x328: offsets x 0, 160, 240 and y 0, 160, 168 -> 9; 320x320 -> 4; Flickr2K 170x160: x 0, 10 -> 2
    assert len(names) == 15 and {'0001_s009.png', '0002_s004.png', '000001_s002.png'} <= set(names)
    assert 'train: 3 source images -> 15 pairs (15 written, 0 already there)' in result.stdout
    source = cv2.imread(str(releases / 'DIV2K/DIV2K_train_HR/0001.png'))
    last = cv2.imread(str(out / 'train_sub' / 'HR' / '0001_s009.png'))
    assert np.array_equal(last, source[168:328, 240:400])  # flush with the bottom-right corner
    lr = cv2.imread(str(out / 'train_sub' / 'LR_bicubic' / 'X4' / '0001_s009.png'))
    expected = (np.clip(basicsr_imresize(last / 255, 1 / 4), 0, 1) * 255).round()
    assert lr.shape == (40, 40, 3) and np.abs(lr - expected).max() <= 1

    valid = {p.name: cv2.imread(str(p)).shape for p in (out / 'valid' / 'HR').iterdir()}
    assert valid == {'0801.png': (136, 204, 3), '0802.png': (136, 200, 3)}  # cropped to multiples of 4
    assert cv2.imread(str(out / 'valid' / 'LR_bicubic' / 'X4' / '0802.png')).shape == (34, 50, 3)
    assert len((out / 'train_sub' / 'HR.lmdb' / 'meta_info.txt').read_text().splitlines()) == 15
    assert (out / 'train_sub' / 'LR_bicubic_X4.lmdb' / 'data.mdb').is_file()

    train = CheckedPairedImageDataset(dataset_opt('div2k', str(out / 'train_sub' / 'LR_bicubic' / 'X4'),
                                                  str(out / 'train_sub' / 'HR'), 'train', gt_size=160))
    assert len(train) == 15 and train[0]['gt'].shape == (3, 160, 160)


def test_rerun_keeps_what_exists_and_never_touches_the_release(releases, tmp_path):
    out = tmp_path / 'DIV2K_x4'
    before = (releases / 'DIV2K/DIV2K_valid_HR/0802.png').read_bytes()
    assert prepare(releases, out).returncode == 0
    (out / 'valid' / 'HR' / '0801.png').unlink()
    result = prepare(releases, out)
    assert 'train: 2 source images -> 13 pairs (0 written, 13 already there)' in result.stdout
    assert 'valid: 2 images -> 2 pairs (1 written, 1 already there)' in result.stdout
    assert (releases / 'DIV2K/DIV2K_valid_HR/0802.png').read_bytes() == before


def test_missing_release_folder_is_named(tmp_path):
    result = prepare(tmp_path, tmp_path / 'o')
    assert result.returncode == 1 and f'{tmp_path}/DIV2K/DIV2K_train_HR: no such folder' in result.stderr
