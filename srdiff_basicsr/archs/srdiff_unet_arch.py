import math

import torch
import torch.nn.functional as F
from torch import nn

from srdiff_basicsr.archs.image_statistics import tile_reduction


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


class Mish(nn.Module):
    """x tanh(softplus(x)) as three element-wise ops, as the official code computes it: on CPUs, forward and backward
    1.1-1.25x faster than torch's one-kernel ``nn.Mish`` (the activation is a quarter of a training iteration)."""

    def forward(self, x):
        return x * torch.tanh(F.softplus(x))


class Block(nn.Module):
    """Reflection-padded 3x3 conv + Mish; no normalisation."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim_in, dim_out, 3), Mish())

    def forward(self, x):
        return self.block(x)


class ResnetBlock(nn.Module):
    """h = block2(block1(x) + Linear(Mish(t_emb))) + res_conv(x)."""

    def __init__(self, dim_in, dim_out, time_dim):
        super().__init__()
        self.mlp = nn.Sequential(Mish(), nn.Linear(time_dim, dim_out))
        self.block1 = Block(dim_in, dim_out)
        self.block2 = Block(dim_out, dim_out)
        self.res_conv = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x, t_emb):
        h = self.block1(x)
        h += self.mlp(t_emb)[:, :, None, None]  # in place, as the official: one full-size buffer less per block
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

    image_statistics = True  # the keys' softmax and the context run over every pixel of the image

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).unbind(1)
        reduction = tile_reduction()
        if reduction is None:
            context = torch.einsum('bhdn,bhen->bhde', k.softmax(dim=-1), v)
        else:  # the softmax over the whole image's pixels: each tile's core, one shift for all tiles
            weights = (k - reduction.combine(k.amax(-1, keepdim=True), 'amax')).exp()
            weights = weights * reduction.mask(h, w, x.device, x.dtype).reshape(b, 1, 1, h * w)
            context = reduction.combine(torch.einsum('bhdn,bhen->bhde', weights, v))
            context = context / reduction.combine(weights.sum(-1, keepdim=True))
        out = torch.einsum('bhde,bhdn->bhen', context, q).reshape(b, -1, h, w)
        return x + self.gate * self.to_out(out)


class WindowAttention(nn.Module):
    """SRADM's window self-attention (Eq. 13): multi-head self-attention among the pixels of each
    non-overlapping ``window`` x ``window`` window, with the usual 1/sqrt(head dim) scaling (the paper's
    equation leaves it out), on the input layer-normalised per pixel (over channels, as Swin's pre-norm: this
    U-Net has no normalisation, and attention on its growing activations made demo runs collapse), added to
    the input through an output projection that starts at zero (a new block starts as the identity).
    A size that does not divide is padded at the bottom and right; the
    padding is masked out of the keys and cropped from the output, so every pixel attends to the real
    pixels of its window only."""

    def __init__(self, dim, heads=4, window=8):
        super().__init__()
        if dim % heads:
            raise ValueError(f'SRDiffUNet: window attention heads ({heads}) must divide the width {dim}')
        self.heads, self.window = heads, window
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.to_out = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.window
        pad_h, pad_w = (-h) % n, (-w) % n
        normed = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        qkv = self.to_qkv(F.pad(normed, (0, pad_w, 0, pad_h)))
        rows, cols = (h + pad_h) // n, (w + pad_w) // n
        # (b, 3, heads, d, rows, n, cols, n) -> (3, b * rows * cols, heads, n * n, d)
        q, k, v = qkv.view(b, 3, self.heads, c // self.heads, rows, n, cols, n).permute(
            1, 0, 4, 6, 2, 5, 7, 3).reshape(3, b * rows * cols, self.heads, n * n, c // self.heads)
        mask = None
        if pad_h or pad_w:  # keys that are real pixels, per window
            real = F.pad(x.new_ones(h, w, dtype=torch.bool), (0, pad_w, 0, pad_h))
            mask = real.view(rows, n, cols, n).permute(0, 2, 1, 3).reshape(1, rows * cols, 1, 1, n * n)
            mask = mask.expand(b, -1, -1, -1, -1).reshape(b * rows * cols, 1, 1, n * n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.view(b, rows, cols, self.heads, n, n, c // self.heads).permute(0, 3, 6, 1, 4, 2, 5).reshape(
            b, c, rows * n, cols * n)
        return x + self.to_out(out[..., :h, :w])


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


class SRDiffUNet(nn.Module):
    """SRDiff's conditional noise predictor eps_theta(x_t, t, cond).

    A U-Net without normalisation: per level two ResnetBlocks fed with the time embedding, then a
    strided conv. The LR condition is the encoder's ``features[2::3]`` (every third map from the
    third), concatenated and brought to HR size by a learned transposed conv; it does not depend on
    t, so :meth:`project_condition` computes it once per image and :meth:`forward` only adds it to
    the level-0 output of every step.

    Module names follow the official implementation, so its checkpoints load after the prefix is
    stripped (``conversion/srdiff.py`` renames the attention's). That includes a quirk kept for them: the level-0
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
        window_attn_levels (list[int]): SRADM: the levels (0 = full resolution) with window self-attention
            (``WindowAttention``) after their ResnetBlocks, on the way down and on the way up (level 0 has no
            up block); SRADM's option files use the two coarsest.
        window_attn_mid (bool): SRADM: window self-attention between the two middle ResnetBlocks too.
        window_size (int), window_heads (int): the windows' side (in pixels of the level) and heads.
    """

    def __init__(self, dim=64, dim_mults=(1, 2, 2, 4), scale=8, encoder_num_feat=32, encoder_num_block=8,
                 num_in_ch=3, num_out_ch=3, use_attn=False, up_input=False, window_attn_levels=(),
                 window_attn_mid=False, window_size=8, window_heads=4):
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
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), Mish(), nn.Linear(dim * 4, dim))

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
        self.mid_window_attn = WindowAttention(mid_dim, window_heads, window_size) if window_attn_mid else nn.Identity()
        self.mid_block2 = ResnetBlock(mid_dim, mid_dim, dim)

        self.ups = nn.ModuleList()
        for dim_in, dim_out in reversed(in_out[1:]):
            self.ups.append(
                nn.ModuleList([ResnetBlock(dim_out * 2, dim_in, dim),
                               ResnetBlock(dim_in, dim_in, dim),
                               Upsample(dim_in)]))

        bad_levels = [level for level in window_attn_levels if level not in range(len(dim_mults))]
        if bad_levels:
            raise ValueError(f'SRDiffUNet: window_attn_levels {bad_levels} not among the levels '
                             f'0..{len(dim_mults) - 1} of dim_mults')
        self.down_window_attns = nn.ModuleDict(
            {str(level): WindowAttention(dims[level + 1], window_heads, window_size) for level in window_attn_levels})
        self.up_window_attns = nn.ModuleDict(
            {str(level): WindowAttention(dims[level], window_heads, window_size) for level in window_attn_levels
             if level > 0})

        self.final_conv = nn.Sequential(Block(dim, dim), nn.Conv2d(dim, num_out_ch, 1))
        self.divisor = 2**(len(dim_mults) - 1)  # HR sizes must be multiples of this
        # HR pixels between window-grid lines of every window attention: tiles start and end on them
        mid_level = [len(dim_mults) - 1] if window_attn_mid else []
        self.window_grid = math.lcm(1, *(window_size * 2**level for level in [*window_attn_levels, *mid_level]))

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
            if str(level) in self.down_window_attns:
                x = self.down_window_attns[str(level)](x)
            skips.append(x)
            x = downsample(x)

        x = self.mid_block2(self.mid_window_attn(self.mid_attn(self.mid_block1(x, t_emb))), t_emb)

        for up_index, (resnet1, resnet2, upsample) in enumerate(self.ups):
            level = len(self.downs) - 1 - up_index
            x = torch.cat((x, skips.pop()), dim=1)
            x = resnet2(resnet1(x, t_emb), t_emb)
            if str(level) in self.up_window_attns:
                x = self.up_window_attns[str(level)](x)
            x = upsample(x)
        # skips[0], the full-resolution skip, is left unused as in the official network
        return self.final_conv(x)
