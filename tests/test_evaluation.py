"""The protocol switch: which options it sets, how it is named, and the numbers it gives; what NIQE can score."""
import numpy as np
import pytest
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim

from srdiff_basicsr.errors import DatasetError, OptionsError
from srdiff_basicsr.models.evaluation import apply_protocol, check_scorable, describe_protocol
from srdiff_basicsr.ops.resize import imresize_uint8
from tests.conftest import photo_crops

METRICS = {'psnr': {'type': 'calculate_psnr'}, 'ssim': {'type': 'calculate_ssim'},
           'lr_psnr': {'type': 'calculate_lr_psnr', 'scale': 4}}


def test_protocols_set_crop_and_channel_of_psnr_and_ssim_only():
    paper = apply_protocol(METRICS, 'paper', 4)
    basicsr = apply_protocol(METRICS, 'basicsr', 4)
    assert paper['psnr'] == {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}
    assert basicsr['ssim'] == {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True}
    assert paper['lr_psnr'] == basicsr['lr_psnr'] == METRICS['lr_psnr']
    assert 'crop_border' not in METRICS['psnr']  # the caller's options are not modified


def test_protocol_values_equal_basicsr_metrics_called_by_hand():
    hr = photo_crops(1, 64)[0]
    sr = imresize_uint8(imresize_uint8(hr, 1 / 4), 4)
    data = {'img': sr, 'img2': hr}
    basicsr = apply_protocol(METRICS, 'basicsr', 4)
    paper = apply_protocol(METRICS, 'paper', 4)
    assert calculate_metric(data, basicsr['psnr']) == calculate_psnr(sr, hr, 4, test_y_channel=True)
    assert calculate_metric(data, basicsr['ssim']) == calculate_ssim(sr, hr, 4, test_y_channel=True)
    assert calculate_metric(data, paper['psnr']) == calculate_psnr(sr, hr, 0)
    assert calculate_metric(data, basicsr['psnr']) != calculate_metric(data, paper['psnr'])


def test_a_metric_contradicting_the_protocol_is_an_error_naming_it():
    metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}
    assert apply_protocol(metrics, 'basicsr', 4)['psnr'] == metrics['psnr']
    with pytest.raises(OptionsError, match=r"val.metrics.psnr.crop_border is 4, but val.protocol 'paper'"):
        apply_protocol(metrics, 'paper', 4)
    with pytest.raises(OptionsError, match='val.protocol: must be one of'):
        apply_protocol(metrics, 'matlab', 4)
    with pytest.raises(OptionsError, match="no metric named 'calculate_nope'"):
        apply_protocol({'x': {'type': 'calculate_nope'}}, 'paper', 4)


def test_protocol_is_named_from_the_metric_options():
    assert describe_protocol(apply_protocol(METRICS, 'paper', 8), 8) == 'paper (RGB, no border crop)'
    assert describe_protocol(apply_protocol(METRICS, 'basicsr', 8), 8) == 'basicsr (Y channel, border crop = 8)'
    mixed = {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}
    assert describe_protocol(mixed, 4) == 'psnr: Y channel, border crop 2'
    assert describe_protocol({'lr_psnr': METRICS['lr_psnr']}, 4) == 'RGB'
    # BasicSR's own default where an option is left out: test_y_channel False
    assert describe_protocol({'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}, 4) == 'psnr: RGB, border crop 4'


def test_rgb_and_y_columns_side_by_side_are_described_per_group_with_niqe():
    both = {**apply_protocol(METRICS, 'paper', 4),
            'psnr_y': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True},
            'niqe': {'type': 'calculate_niqe', 'crop_border': 4},  # NIQE's convert_to defaults to y
            'niqe_grey': {'type': 'calculate_niqe', 'crop_border': 0, 'convert_to': 'gray'}}
    assert describe_protocol(both, 4) == ('psnr, ssim: RGB, no border crop; psnr_y, niqe: Y channel, border crop 4; '
                                          'niqe_grey: grey channel, no border crop')
    paper_and_niqe = {**apply_protocol(METRICS, 'paper', 4), 'niqe': both['niqe']}
    assert describe_protocol(paper_and_niqe, 4) == 'paper (RGB, no border crop); niqe: Y channel, border crop 4'


def test_niqe_refuses_images_under_two_blocks_before_sampling_them():
    niqe = {'niqe': {'type': 'calculate_niqe', 'crop_border': 4}}
    check_scorable(niqe, (104, 200), 'set/a')  # 96 x 192 after the crop: 2 blocks of 96
    with pytest.raises(DatasetError, match=r'val.metrics.niqe cannot score set/b: NIQE needs at least 2 blocks of '
                                           r'96x96 px after its 4-px border crop, the 199x199 image has 1'):
        check_scorable(niqe, (199, 199), 'set/b')
    # the limit is BasicSR's: one pixel under it, its NIQE fails deep inside numpy; at it, it gives a number
    photo = photo_crops(1, 256)[0]
    assert np.isfinite(calculate_metric({'img': photo[:104, :200]}, niqe['niqe']))
    with pytest.raises(np.linalg.LinAlgError):
        calculate_metric({'img': photo[:104, :199]}, niqe['niqe'])
