import math

from torch import nn
from torch.nn import functional as F

from srdiff_basicsr.archs.rrdb_blocks import RRDB


class SRDiffRRDBNet(nn.Module):
    """SRDiff's low-resolution encoder: ESRGAN's RRDB network for any power-of-two scale.

    ``forward`` returns the SR image, so a stock BasicSR ``SRModel`` with an L1 loss pretrains it
    (that is how SRDiff's encoder is trained); ``features`` returns the LR-size hidden maps the
    diffusion U-Net is conditioned on. Inputs and outputs are RGB in [0, 1], BasicSR's range.

    The upsampling tail is nearest x2 + conv + LeakyReLU, once per factor of 2 (BasicSR's
    ``RRDBNet`` always upsamples x4, so it cannot serve x8). Parameter names follow BasicSR's
    ``RRDBNet`` (``body``, ``conv_body``, ``conv_up1``...), so x4 checkpoints of the same size load
    either way; x8 adds ``conv_up3``.

    Args:
        num_in_ch, num_out_ch (int): image channels.
        scale (int): 2, 4 or 8 (any power of two).
        num_feat (int): feature width (SRDiff: 32).
        num_block (int): number of RRDB blocks (SRDiff: 8).
        num_grow_ch (int): dense-block growth channels (SRDiff: 16).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=32, num_block=8, num_grow_ch=16):
        super().__init__()
        num_up = int(math.log2(scale)) if scale >= 2 else 0
        if 2**num_up != scale:
            raise ValueError(f'SRDiffRRDBNet: scale must be a power of two (2, 4, 8, ...), got {scale}')
        self.scale = scale
        self.num_up = num_up
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for i in range(1, num_up + 1):
            self.add_module(f'conv_up{i}', nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def features(self, x):
        """The ``num_block + 1`` LR-size maps: each RRDB block's output, then the trunk sum
        ``conv_first(x) + conv_body(last block)``."""
        feat_first = feat = self.conv_first(x)
        feats = []
        for block in self.body:
            feat = block(feat)
            feats.append(feat)
        feats.append(feat_first + self.conv_body(feat))
        return feats

    def upsample(self, trunk):
        """The SR image in [0, 1] from the trunk sum (the last of ``features``)."""
        feat = trunk
        for i in range(1, self.num_up + 1):
            conv_up = getattr(self, f'conv_up{i}')
            feat = self.lrelu(conv_up(F.interpolate(feat, scale_factor=2, mode='nearest')))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out.clamp(0, 1)  # as the official encoder, also while it is pretrained

    def forward(self, x, return_features=False):
        """The SR image; with ``return_features``, (SR image, ``features``) from one pass (joint training)."""
        features = self.features(x)
        sr = self.upsample(features[-1])
        return (sr, features) if return_features else sr
