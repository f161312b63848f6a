"""ESRGAN's residual-in-residual dense block (Wang et al. 2018), the trunk of SRDiff's LR encoder.

Parameter names (``rdb1..3``, ``conv1..5``), initialisation and the order the random generator is drawn in are
those of BasicSR's ``RRDB``, so its checkpoints load here and a seeded network starts from the same weights.
"""
import torch
from torch import nn

RESIDUAL_SCALE = 0.2  # ESRGAN's residual scaling, in the dense blocks and around each RRDB
INIT_SCALE = 0.1  # ESRGAN's initialisation: Kaiming normal weights times 0.1, zero biases


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each fed the block input and every earlier output (dense connections); LeakyReLU 0.2
    after the first four; x + 0.2 * conv5(...)."""

    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        for i in range(5):
            width_out = num_feat if i == 4 else num_grow_ch
            self.add_module(f'conv{i + 1}', nn.Conv2d(num_feat + i * num_grow_ch, width_out, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        for conv in self.convs():
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data *= INIT_SCALE
            conv.bias.data.zero_()

    def convs(self):
        return [getattr(self, f'conv{i + 1}') for i in range(5)]

    def forward(self, x):
        *hidden, last = self.convs()
        maps = [x]
        for conv in hidden:
            maps.append(self.lrelu(conv(torch.cat(maps, 1))))
        return x + RESIDUAL_SCALE * last(torch.cat(maps, 1))


class RRDB(nn.Module):
    """Three dense blocks in a chain, with a scaled residual around them."""

    def __init__(self, num_feat, num_grow_ch=32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))
