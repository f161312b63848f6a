"""Batched MATLAB-style bicubic against BasicSR's one-image port (an independent implementation)."""
import pytest
import torch
from basicsr.utils.matlab_functions import imresize as basicsr_imresize

from srdiff_basicsr.ops.resize import imresize


@pytest.mark.parametrize('size,scale', [((8, 8), 4), ((5, 7), 8), ((6, 9), 2), ((32, 32), 1 / 4), ((41, 30), 1 / 4),
                                        ((40, 24), 1 / 8), ((1, 9), 4), ((2, 3), 8), ((1, 1), 4)])
def test_batched_resize_matches_basicsr_matlab_port(size, scale):
    torch.manual_seed(0)
    batch = torch.rand(3, 3, *size)
    ours = imresize(batch, scale)
    for i in range(batch.shape[0]):
        reference = basicsr_imresize(batch[i], scale)
        assert ours[i].shape == reference.shape
        assert (ours[i] - reference).abs().max() < 1e-5


def test_resize_keeps_constant_images_constant_and_runs_in_the_input_dtype():
    img = torch.full((1, 3, 7, 5), 0.3, dtype=torch.float64)
    out = imresize(img, 4)
    assert out.dtype == torch.float64 and out.shape == (1, 3, 28, 20)
    assert torch.allclose(out, torch.full_like(out, 0.3))


def test_resize_rejects_integer_images():
    with pytest.raises(ValueError, match='float'):
        imresize(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 2)


def test_uint8_helper_rounds_basicsr_matlab_port():
    import numpy as np
    from tests.conftest import photo_crops
    from srdiff_basicsr.ops.resize import imresize_uint8
    hr = photo_crops(1, 40)[0]
    reference = basicsr_imresize(hr.astype(np.float64) / 255, 1 / 4)
    expected = (np.clip(reference, 0, 1) * 255).round()
    ours = imresize_uint8(hr, 1 / 4)
    assert ours.dtype == np.uint8 and ours.shape == (10, 10, 3)
    assert np.abs(ours.astype(int) - expected).max() <= 1  # float32 vs float64 filtering at .5 boundaries
