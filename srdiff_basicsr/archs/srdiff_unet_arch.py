import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style embedding of the integer step t (0-based, not rescaled)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class Block(nn.Module):
    """Reflection-padded 3x3 conv + Mish; no normalisation."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim_in, dim_out, 3), nn.Mish())

    def forward(self, x):
        return self.block(x)


class ResnetBlock(nn.Module):
    """h = block2(block1(x) + Linear(Mish(t_emb))) + res_conv(x)."""

    def __init__(self, dim_in, dim_out, time_dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_dim, dim_out))
        self.block1 = Block(dim_in, dim_out)
        self.block2 = Block(dim_out, dim_out)
        self.res_conv = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x, t_emb):
        h = self.block1(x) + self.mlp(t_emb)[:, :, None, None]
        return self.block2(h) + self.res_conv(x)


class MidAttention(nn.Module):
    """The official ``use_attn`` block: x + g * LinearAttention(x), with the ReZero gate g a learned scalar
    starting at 0 (so a new network starts as one without attention).

    Linear attention (Katharopoulos et al. 2020 / Shen et al. 2021): per head, keys softmaxed over the
    pixels, context = k v^T (a c x c matrix), out = context^T q; cost linear in the number of pixels."""

    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Conv2d(dim, 3 * heads * dim_head, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dim_head, dim, 1)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).unbind(1)
        context = torch.einsum('bhdn,bhen->bhde', k.softmax(dim=-1), v)
        out = torch.einsum('bhde,bhdn->bhen', context, q).reshape(b, -1, h, w)
        return x + self.gate * self.to_out(out)


class Downsample(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 2))

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Sequential(nn.ConvTranspose2d(dim, dim, 4, 2, 1))

    def forward(self, x):
        return self.conv(x)


@ARCH_REGISTRY.register()
class SRDiffUNet(nn.Module):
    """SRDiff's conditional noise predictor eps_theta(x_t, t, cond).

    A U-Net without normalisation: per level two ResnetBlocks fed with the time embedding, then a
    strided conv. The LR condition is the encoder's ``features[2::3]`` (every third map from the
    third), concatenated and brought to HR size by a learned transposed conv; it does not depend on
    t, so :meth:`project_condition` computes it once per image and :meth:`forward` only adds it to
    the level-0 output of every step.

    Module names follow the official implementation, so its checkpoints load after the prefix is
    stripped (``official.py`` renames the attention's). That includes a quirk kept for them: the level-0
    skip is stored but never used, since the expansive path has one level fewer than the contracting one.

    Args:
        dim (int): base width (paper: 64).
        dim_mults (list[int]): width multipliers per level (CelebA x8: 1, 2, 2, 4; DIV2K x4: 1, 2, 3, 4).
        scale (int): SR factor; the condition is upsampled by it.
        encoder_num_feat (int): width of the encoder's feature maps (paper: 32).
        encoder_num_block (int): number of RRDB blocks in the encoder (paper: 8).
        num_in_ch, num_out_ch (int): channels of x_t and of the predicted noise.
        use_attn (bool): the official option: linear attention with a ReZero gate between the two middle
            ResnetBlocks (``MidAttention``).
        up_input (bool): the official option: a reflection-padded 3x3 conv of ``lr_up`` (in [-1, 1]) is
            added to the condition.
    """

    def __init__(self, dim=64, dim_mults=(1, 2, 2, 4), scale=8, encoder_num_feat=32, encoder_num_block=8,
                 num_in_ch=3, num_out_ch=3, use_attn=False, up_input=False):
        super().__init__()
        dims = [num_in_ch] + [dim * m for m in dim_mults]
        in_out = list(zip(dims[:-1], dims[1:]))
        num_cond_maps = len(range(2, encoder_num_block + 1, 3))  # features[2::3] of num_block + 1 maps
        if num_cond_maps == 0:
            raise ValueError(f'SRDiffUNet: encoder_num_block must be at least 2, got {encoder_num_block}')
        self.cond_proj = nn.ConvTranspose2d(encoder_num_feat * num_cond_maps, dim, scale * 2, scale, scale // 2)
        if up_input:
            self.up_proj = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(num_in_ch, dim, 3))

        self.time_pos_emb = SinusoidalTimeEmbedding(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))

        self.downs = nn.ModuleList()
        for level, (dim_in, dim_out) in enumerate(in_out):
            is_last = level == len(in_out) - 1
            self.downs.append(
                nn.ModuleList([
                    ResnetBlock(dim_in, dim_out, dim),
                    ResnetBlock(dim_out, dim_out, dim),
                    nn.Identity() if is_last else Downsample(dim_out)
                ]))

        mid_dim = dims[-1]
        self.mid_block1 = ResnetBlock(mid_dim, mid_dim, dim)
        self.mid_attn = MidAttention(mid_dim) if use_attn else nn.Identity()
        self.mid_block2 = ResnetBlock(mid_dim, mid_dim, dim)

        self.ups = nn.ModuleList()
        for dim_in, dim_out in reversed(in_out[1:]):
            self.ups.append(
                nn.ModuleList([ResnetBlock(dim_out * 2, dim_in, dim),
                               ResnetBlock(dim_in, dim_in, dim),
                               Upsample(dim_in)]))

        self.final_conv = nn.Sequential(Block(dim, dim), nn.Conv2d(dim, num_out_ch, 1))
        self.divisor = 2**(len(dim_mults) - 1)  # HR sizes must be multiples of this

    def project_condition(self, features, lr_up):
        """The HR-size condition, the same at every step: projected from the encoder's feature maps (all
        ``num_block + 1`` of them) and, with ``up_input``, from ``lr_up`` (the bicubic upsampling, in [-1, 1])."""
        cond = self.cond_proj(torch.cat(features[2::3], dim=1))
        return cond + self.up_proj(lr_up) if hasattr(self, 'up_proj') else cond

    def forward(self, x, t, cond):
        t_emb = self.mlp(self.time_pos_emb(t))
        skips = []
        for level, (resnet1, resnet2, downsample) in enumerate(self.downs):
            x = resnet2(resnet1(x, t_emb), t_emb)
            if level == 0:
                x = x + cond
            skips.append(x)
            x = downsample(x)

        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t_emb)), t_emb)

        for resnet1, resnet2, upsample in self.ups:
            x = torch.cat((x, skips.pop()), dim=1)
            x = upsample(resnet2(resnet1(x, t_emb), t_emb))
        # skips[0], the full-resolution skip, is left unused as in the official network
        return self.final_conv(x)
