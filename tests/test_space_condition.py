"""The pipeline runs on any space and condition objects: a toy latent space (x0 at half the HR size) and a
condition asked for at every step, with none of the pipeline, samplers or schedule changed."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.ops.resize import imresize
from srdiff_basicsr.pipeline import SRDiffPipeline


class HalfSizeResidualSpace:
    """x0: the HR residual over lr_up, averaged over 2x2 blocks (a 'latent' at half the HR size)."""
    factor, clip_x0, networks, canvas_grid, tile_weights = 2, False, (), 1, 'gaussian'

    def reference(self, lr, noise=None):
        return imresize(lr, 4)

    def encode(self, hr, lr_up):
        return F.avg_pool2d(hr - lr_up, 2)

    def decode(self, x0, lr_up, clamp=True):
        sr = lr_up + F.interpolate(x0, scale_factor=2, mode='nearest')
        return sr.clamp(0, 1) if clamp else sr

    def shape(self, lr_up):
        return (lr_up.shape[0], 3, lr_up.shape[2] // 2, lr_up.shape[3] // 2)

    def colour_reference(self, lr_up):
        return lr_up


class StepCondition:
    """Records every time it is asked for; gives the latent-size map the toy network reads x0 from."""
    asked = []

    def __init__(self, x0):
        self.x0 = x0

    @classmethod
    def of_lr(cls, encoder, unet, lr, reference, scale):
        return cls(unet.x0)

    def at(self, t, box=None):
        StepCondition.asked.append(t.tolist())
        return self.x0


class KnowsX0(nn.Module):
    """eps of x_t for the x0 its condition carries: every step then predicts x0 exactly."""
    divisor = 2

    def __init__(self, schedule):
        super().__init__()
        self.schedule, self.x0 = schedule, None
        self.weight = nn.Parameter(torch.zeros(1))  # a device for the pipeline

    def forward(self, x_t, t, cond):
        a = self.schedule.alphas_cumprod[t.long()][:, None, None, None]
        return (x_t - a.sqrt() * cond) / (1 - a).sqrt()


def test_a_pipeline_on_a_half_size_latent_space_with_a_per_step_condition():
    torch.manual_seed(0)
    schedule = DiscreteSchedule.from_options(timesteps=10)
    unet = KnowsX0(schedule)
    space = HalfSizeResidualSpace()
    lr = 0.25 + 0.5 * torch.rand(1, 3, 6, 6)  # hr within [0, 1]: the decoding clamps nothing
    lr_up = space.reference(lr)
    hr = lr_up + F.interpolate(torch.rand(1, 3, 12, 12) * 0.2 - 0.1, scale_factor=2, mode='nearest')
    unet.x0 = space.encode(hr, lr_up)
    pipe = SRDiffPipeline(nn.Identity(), unet, schedule, 4, space=space, condition=StepCondition, precision='fp32')
    StepCondition.asked = []
    sr = pipe(lr, seed=0, sampler='ddim', steps=5)
    assert sr.shape == hr.shape and torch.allclose(sr, hr, atol=1e-4)
    assert StepCondition.asked == [[step] for step in (9, 7, 5, 3, 1)]  # once per step, at its step
    assert pipe.nfe == 5


def test_pixel_space_options_beside_a_space_are_refused_by_name():
    schedule = DiscreteSchedule.from_options(timesteps=10)
    with pytest.raises(OptionsError, match=r"\['clip_x0', 'lr_up'\] given beside space=.*HalfSizeResidualSpace"):
        SRDiffPipeline(nn.Identity(), KnowsX0(schedule), schedule, 4, space=HalfSizeResidualSpace(), clip_x0=True,
                       lr_up='matlab')
