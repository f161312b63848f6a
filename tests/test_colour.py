"""Colour fixes against closed forms: they undo a colour change and keep the detail."""
import pytest
import torch

from srdiff_basicsr.ops.colour import adain, colour_fix, wavelet_fix


@pytest.fixture
def reference():
    torch.manual_seed(0)
    return torch.rand(2, 3, 40, 48) * 0.6 + 0.2


def test_adain_undoes_a_per_channel_affine_colour_change(reference):
    scale, shift = torch.tensor([0.5, 1.2, 0.8])[:, None, None], torch.tensor([0.1, -0.05, 0.2])[:, None, None]
    # the eps of 1e-5 inside each sqrt (StableSR's) biases the std ratio by ~eps / var: 3e-4 here
    assert torch.allclose(adain(reference * scale + shift, reference), reference, atol=3e-4)
    fixed = adain(torch.rand_like(reference), reference)
    assert torch.allclose(fixed.mean((-2, -1)), reference.mean((-2, -1)), atol=1e-5)
    assert torch.allclose(fixed.std((-2, -1)), reference.std((-2, -1)), atol=1e-4)


def test_wavelet_fix_takes_the_low_band_from_the_reference_and_detail_from_the_sr(reference):
    shift = torch.tensor([0.1, -0.05, 0.2])[:, None, None]
    assert torch.allclose(wavelet_fix(reference + shift, reference), reference, atol=1e-5)  # a colour cast goes
    # a smooth tint across the image (which a global fix cannot remove) goes, the detail stays: exactly
    # away from the borders (the binomial kernel keeps linear ramps; the replicated border does not)
    reference = torch.rand(1, 3, 128, 160) * 0.6 + 0.2
    tint = torch.linspace(-0.15, 0.15, 160).expand_as(reference)
    error = (wavelet_fix(reference + tint, reference) - reference).abs()
    assert error[..., 32:-32, 32:-32].max() < 1e-5 and error.mean() < tint.abs().mean() / 20
    assert (adain(reference + tint, reference) - reference).abs().mean() > 10 * error.mean()


def test_colour_fix_choices(reference):
    sr = (reference + 0.5).clamp(0, 1)
    assert torch.equal(colour_fix(sr, reference, 'none'), sr)
    for method in ('adain', 'wavelet'):
        fixed = colour_fix(sr, reference, method)
        assert fixed.min() >= 0 and fixed.max() <= 1
        assert (fixed - reference).abs().mean() < (sr - reference).abs().mean() / 3
    with pytest.raises(ValueError, match='colour fix must be one of'):
        colour_fix(sr, reference, 'histogram')


@pytest.mark.parametrize('suffix', ['', '_nonsquare'])
@pytest.mark.parametrize('method', ['adain', 'wavelet'])
def test_colour_fixes_give_stablesrs_numbers(stablesr_golden, method, suffix):
    """StableSR's scripts/wavelet_color_fix.py on [-1, 1] images (golden), unclamped; ours on [0, 1], clamped."""
    data = stablesr_golden['e_colorfix']
    content, style, expected = data[f'content{suffix}'], data[f'style{suffix}'], data[f'{method}{suffix}']
    fix = {'adain': adain, 'wavelet': wavelet_fix}[method]
    assert torch.allclose(fix(content, style), expected, rtol=0, atol=1e-6)
    ours = colour_fix((content + 1) / 2, (style + 1) / 2, method)
    assert torch.allclose(ours, ((expected + 1) / 2).clamp(0, 1), rtol=0, atol=1e-6)
