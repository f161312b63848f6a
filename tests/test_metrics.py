"""LPIPS, ST-LPIPS and LR-PSNR as BasicSR metrics, against closed forms, BasicSR's own functions and the
reference implementation's numbers."""
import math

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric, calculate_psnr
from basicsr.utils.registry import METRIC_REGISTRY

from srdiff_basicsr.metrics import lpips_network, lr_psnr
from srdiff_basicsr.ops.resize import imresize_uint8
from tests.conftest import photo_crops


def test_metrics_are_registered_for_val_metrics_sections():
    assert {'calculate_lpips', 'calculate_stlpips', 'calculate_lr_psnr'} <= {name for name, _ in METRIC_REGISTRY}


def test_lpips_of_identical_images_is_zero_and_of_different_ones_positive():
    a, b = photo_crops(2, 64)
    same = calculate_metric({'img': a, 'img2': a.copy()}, {'type': 'calculate_lpips', 'random_trunk': True})
    different = calculate_metric({'img': a, 'img2': b}, {'type': 'calculate_lpips', 'random_trunk': True,
                                                         'crop_border': 4})
    assert same == pytest.approx(0, abs=1e-7)
    assert different > 0
    with pytest.raises(ValueError, match='at least 32x32'):
        calculate_metric({'img': a[:20], 'img2': a[:20]}, {'type': 'calculate_lpips', 'random_trunk': True})


def test_lpips_network_is_built_once_per_device():
    assert lpips_network('alex', 'cpu', True) is lpips_network('alex', 'cpu', True)


def test_lpips_without_imagenet_weights_says_which_file_goes_where(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    try:
        with pytest.raises(FileNotFoundError) as error:
            lpips_network('alex', 'cpu', random_trunk=False)
    finally:
        torch.hub.set_dir(old)
    message = str(error.value)
    assert 'alexnet-owt-7be5be79.pth' in message and str(tmp_path / 'hub' / 'checkpoints') in message


def test_lr_psnr_closed_form_on_constant_images():
    sr = np.full((16, 16, 3), 100, np.uint8)
    lr = np.full((4, 4, 3), 90, np.uint8)
    assert lr_psnr(sr, lr, 4) == pytest.approx(10 * math.log10(255**2 / 10**2), abs=1e-9)


def test_lr_psnr_of_an_exact_bicubic_round_trip_is_only_limited_by_8_bit_rounding():
    hr = photo_crops(1, 64)[0]
    lr = imresize_uint8(hr, 1 / 4)
    # the LR differs from the unrounded bicubic of the HR by at most 0.5: MSE <= 0.25, PSNR >= 54.15 dB
    assert lr_psnr(hr, lr, 4) >= 10 * math.log10(255**2 / 0.25)
    blurred = imresize_uint8(lr, 4)  # bicubic up then down is not the identity
    assert lr_psnr(blurred, lr, 4) < lr_psnr(hr, lr, 4)


def test_lr_psnr_metric_uses_the_lr_when_given_and_the_bicubic_of_the_hr_otherwise():
    hr, other = photo_crops(2, 32)
    lr = imresize_uint8(hr, 1 / 4)
    from_hr = calculate_metric({'img': other, 'img2': hr}, {'type': 'calculate_lr_psnr', 'scale': 4})
    given = calculate_metric({'img': other, 'img2': hr, 'lq': lr}, {'type': 'calculate_lr_psnr', 'scale': 4})
    assert from_hr == given == pytest.approx(lr_psnr(other, lr, 4))
    # an SR equal to the HR scores far higher than the plain PSNR of unrelated images
    assert calculate_metric({'img': hr, 'img2': hr}, {'type': 'calculate_lr_psnr', 'scale': 4}) > 50
    assert calculate_psnr(other, hr, 0) < 30
    with pytest.raises(ValueError, match='needs `scale`'):
        calculate_metric({'img': hr, 'img2': hr}, {'type': 'calculate_lr_psnr'})


def test_lr_psnr_from_hr_compares_with_the_clean_lr_not_the_degraded_input():
    hr, sr = photo_crops(2, 32)
    degraded = np.clip(imresize_uint8(hr, 1 / 4).astype(int) + 20, 0, 255).astype(np.uint8)
    opt = {'type': 'calculate_lr_psnr', 'scale': 4}
    clean = calculate_metric({'img': sr, 'img2': hr, 'lq': degraded}, {**opt, 'lr_from_hr': True})
    assert clean == pytest.approx(lr_psnr(sr, imresize_uint8(hr, 1 / 4), 4))
    assert clean != pytest.approx(calculate_metric({'img': sr, 'img2': hr, 'lq': degraded}, opt))


def astronaut_crop():
    from skimage import data
    return data.astronaut()[:128, :128]  # RGB uint8


def test_stlpips_gives_the_reference_implementations_numbers():
    # stlpips-pytorch 0.0.2's own LPIPS(net='alex', variant='shift_tolerant') on the same inputs (its modules run
    # with IPython and torchsummary stubbed out): 0.1133929 for a 5x5 box blur, 0.0036146 for a 1-pixel shift
    import torch.nn.functional as F

    from srdiff_basicsr.metrics.stlpips_metric import stlpips_network
    x = torch.from_numpy(astronaut_crop().astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    network = stlpips_network('cpu')
    with torch.no_grad():
        assert network(x, x).item() == 0
        assert network(x, F.avg_pool2d(x, 5, stride=1, padding=2)).item() == pytest.approx(0.1133929, abs=2e-6)
        assert network(x, torch.roll(x, 1, dims=3)).item() == pytest.approx(0.0036146, abs=2e-6)


def test_stlpips_metric_is_zero_for_identical_images_and_grows_with_blur():
    import cv2
    bgr = np.ascontiguousarray(astronaut_crop()[..., ::-1])
    opt = {'type': 'calculate_stlpips', 'device': 'cpu'}
    assert calculate_metric({'img': bgr, 'img2': bgr.copy()}, opt) == 0
    scores = [calculate_metric({'img': bgr, 'img2': cv2.blur(bgr, (size, size))}, opt) for size in (3, 5, 9)]
    assert 0 < scores[0] < scores[1] < scores[2]
    with pytest.raises(ValueError, match='calculate_stlpips: images must be at least 21x21'):
        calculate_metric({'img': bgr[:20], 'img2': bgr[:20]}, opt)
