"""CheckedPairedImageDataset: BasicSR's pairs, with bad data reported by file."""
import cv2
import numpy as np
import pytest

from srdiff_basicsr.data import CheckedPairedImageDataset
from srdiff_basicsr.errors import DatasetError
from tests.conftest import dataset_opt, make_pairs


def build(lr_dir, hr_dir, phase='val', **extra):
    return CheckedPairedImageDataset(dataset_opt('pairs', lr_dir, hr_dir, phase, **extra))


def test_good_pairs_load_like_basicsr(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=5)
    dataset = build(lr_dir, hr_dir)
    assert len(dataset) == 5
    # in name order whatever the directory order (image i gets sampling seed val.seed + i)
    assert [dataset[i]['gt_path'][-7:] for i in range(5)] == [f'00{i}.png' for i in range(5)]
    item = dataset[0]
    assert item['lq'].shape == (3, 8, 8) and item['gt'].shape == (3, 32, 32)
    hr = cv2.imread(f'{hr_dir}/000.png')[..., ::-1] / 255  # RGB, [0, 1]
    assert np.allclose(item['gt'].permute(1, 2, 0).numpy(), hr, atol=1e-6)


def test_missing_folder(tmp_path):
    lr_dir, _ = make_pairs(tmp_path, count=1)
    with pytest.raises(DatasetError, match=f"dataroot_gt is not a folder: {tmp_path}/nope"):
        build(lr_dir, str(tmp_path / 'nope'))


def test_unequal_folders_list_the_unpaired_files(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=3)
    (tmp_path / 'LR' / '001.png').unlink()
    with pytest.raises(DatasetError, match=r'do not match \(2 LR, 3 HR files\)[\s\S]*without LR.*001\.png'):
        build(lr_dir, hr_dir)


def test_stray_non_image_file_is_named(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=1)
    (tmp_path / 'HR' / 'notes.txt').write_text('x')
    with pytest.raises(DatasetError, match='not image files.*HR/notes.txt'):
        build(lr_dir, hr_dir)


def test_unreadable_image_is_named(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=2)
    (tmp_path / 'LR' / '001.png').write_bytes(b'not a png')
    with pytest.raises(DatasetError, match=r'LR/001\.png: not a readable image'):
        build(lr_dir, hr_dir)


def test_truncated_image_is_named_unless_only_headers_are_checked(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=2, hr_size=64)
    data = (tmp_path / 'HR' / '001.png').read_bytes()
    (tmp_path / 'HR' / '001.png').write_bytes(data[:len(data) // 2])  # the header is intact
    with pytest.raises(DatasetError, match=r'HR/001\.png: not a readable image \(image file is truncated'):
        build(lr_dir, hr_dir)
    assert len(build(lr_dir, hr_dir, check_pairs='headers')) == 2  # the cheap check cannot see it
    with pytest.raises(DatasetError, match="check_pairs must be one of"):
        build(lr_dir, hr_dir, check_pairs='quick')


def test_hr_size_not_scale_times_lr_is_named(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=2)
    hr = cv2.imread(f'{hr_dir}/001.png')
    cv2.imwrite(f'{hr_dir}/001.png', hr[:24])
    with pytest.raises(DatasetError, match=r'HR/001\.png is 32x24, but .*LR/001\.png is 8x8: at scale 4 the HR '
                                           r'should be 32x32'):
        build(lr_dir, hr_dir)


def test_image_broken_after_startup_is_named_when_loaded(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=1)
    dataset = build(lr_dir, hr_dir)
    (tmp_path / 'HR' / '000.png').write_bytes(b'broken later')
    with pytest.raises(DatasetError, match=r'cannot load the image pair .*LR/000\.png / .*HR/000\.png'):
        dataset[0]


def test_grayscale_rgba_and_16_bit_images_are_converted_to_8_bit_rgb(tmp_path):
    lr_dir, hr_dir = make_pairs(tmp_path, count=3)
    gray = cv2.cvtColor(cv2.imread(f'{hr_dir}/000.png'), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(f'{hr_dir}/000.png', gray)
    bgr = cv2.imread(f'{hr_dir}/001.png')
    alpha = np.full(bgr.shape[:2] + (1, ), 7, np.uint8)
    cv2.imwrite(f'{hr_dir}/001.png', np.concatenate([bgr, alpha], axis=2))
    deep = cv2.imread(f'{hr_dir}/002.png').astype(np.uint16) * 257  # 8-bit v -> 16-bit v * 257
    cv2.imwrite(f'{hr_dir}/002.png', deep)
    dataset = build(lr_dir, hr_dir)
    gray_item = dataset[0]['gt'].numpy()
    assert gray_item.shape == (3, 32, 32)
    assert np.allclose(gray_item[0], gray / 255) and np.allclose(gray_item[1], gray_item[2])
    assert np.allclose(dataset[1]['gt'].permute(1, 2, 0).numpy(), bgr[..., ::-1] / 255)  # alpha dropped
    assert np.allclose(dataset[2]['gt'].permute(1, 2, 0).numpy(), (deep[..., ::-1] // 257) / 255, atol=1 / 255)


def test_bicubic_dataset_crops_aligned_patches_and_makes_their_lr(tmp_path):
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    from srdiff_basicsr.data import BicubicSRDataset
    _, hr_dir = make_pairs(tmp_path, count=2, hr_size=34)  # 34 is not a multiple of 4
    opt = dict(name='hr_only', dataroot_gt=hr_dir, scale=4, io_backend=dict(type='disk'), phase='train', gt_size=16,
               use_hflip=True, use_rot=True)
    dataset = BicubicSRDataset(opt)
    for _ in range(5):
        item = dataset[1]
        assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 4, 4)
        expected = np.clip(basicsr_imresize(item['gt'].permute(1, 2, 0).numpy().astype(np.float64), 1 / 4), 0, 1)
        assert np.abs(item['lq'].permute(1, 2, 0).numpy() - np.round(expected * 255) / 255).max() <= 1 / 255 + 1e-6
    whole = BicubicSRDataset(dict(opt, phase='val'))[0]
    assert whole['gt'].shape == (3, 32, 32) and whole['lq'].shape == (3, 8, 8)  # cropped to a multiple of 4


def test_bicubic_dataset_errors_name_the_problem(tmp_path):
    from srdiff_basicsr.data import BicubicSRDataset
    base = dict(name='hr_only', scale=4, io_backend=dict(type='disk'), phase='train')
    with pytest.raises(DatasetError, match=f'dataroot_gt is not a folder: {tmp_path}/nope'):
        BicubicSRDataset(dict(base, dataroot_gt=str(tmp_path / 'nope')))
    _, hr_dir = make_pairs(tmp_path, count=1)
    with pytest.raises(DatasetError, match='gt_size 18 is not a multiple of scale 4'):
        BicubicSRDataset(dict(base, dataroot_gt=hr_dir, gt_size=18))
    (tmp_path / 'HR' / '000.png').write_bytes(b'broken')
    with pytest.raises(DatasetError, match=r'HR/000\.png: not a readable image'):
        BicubicSRDataset(dict(base, dataroot_gt=hr_dir))[0]
