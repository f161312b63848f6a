"""The blocks of StableSR's U-Net and time-aware encoder that diffusers has no exact match for, under the names of
the official code (so that a released checkpoint loads with its own keys): the timestep residual block with an
optional SPADE between its output layers and the skip add, the SPADE itself, and the legacy-order multi-head
attention of the time-aware encoder. GroupNorms compute in float32 as the official ``GroupNorm32``."""
import math

import torch
from torch import nn
from torch.nn import functional as F


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32, C) computed in float32 and returned in the input's dtype."""

    def __init__(self, channels, eps=1e-5):
        super().__init__(32, channels, eps=eps)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(t, dim, max_period=10000):
    """[cos, sin] of t at dim / 2 frequencies max_period^(-i / (dim / 2)) (the LDM sinusoid; float32)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def time_embed(model_channels):
    """Linear-SiLU-Linear from the sinusoid to 4 x model_channels (``time_embed.0`` / ``.2``)."""
    dim = 4 * model_channels
    return nn.Sequential(nn.Linear(model_channels, dim), nn.SiLU(), nn.Linear(dim, dim))


class SPADE(nn.Module):
    """GN(h) (1 + gamma(s)) + beta(s) with gamma, beta 3x3 convolutions of ReLU(conv3x3(s -> 128)) (Park et al.
    2019), s the condition map at h's size; the norm is the affine GroupNorm32 (the official's, not instance)."""

    def __init__(self, channels, label_channels, hidden=128):
        super().__init__()
        self.param_free_norm = GroupNorm32(channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, h, segmap):
        actv = self.mlp_shared(segmap)
        return self.param_free_norm(h) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class TimestepResBlock(nn.Module):
    """skip(x) + [SPADE](out_layers(in_layers(x) + emb_layers(emb))); out_layers end in a zero-initialised conv.
    With ``label_channels`` the SPADE reads ``struct_cond[str(width)]``, the condition of the same width."""

    def __init__(self, channels, emb_channels, out_channels=None, dropout=0.0, label_channels=None):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        nn.init.zeros_(self.out_layers[3].weight)
        nn.init.zeros_(self.out_layers[3].bias)
        self.skip_connection = (nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1))
        self.spade = None if label_channels is None else SPADE(out_channels, label_channels)

    def forward(self, x, emb, struct_cond=None):
        h = self.in_layers(x) + self.emb_layers(emb).type(x.dtype)[..., None, None]
        h = self.out_layers(h)
        if self.spade is not None:
            h = self.spade(h, struct_cond[str(h.shape[-1])])
        return self.skip_connection(x) + h


class LegacyAttention(nn.Module):
    """Self-attention over the pixels with one 1x1 qkv projection split per head as (q, k, v) (the legacy order of
    the time-aware encoder's AttentionBlock), scores scaled by 1 / sqrt(head channels), plus the input."""

    def __init__(self, channels, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x):
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))
        q, k, v = qkv.reshape(b * self.num_heads, 3 * c // self.num_heads, -1).chunk(3, dim=1)
        weights = torch.softmax(torch.einsum('bct,bcs->bts', q, k).float() / math.sqrt(q.shape[1]), dim=-1)
        h = torch.einsum('bts,bcs->bct', weights.type(v.dtype), v).reshape(b, c, -1)
        return (flat + self.proj_out(h)).reshape(b, c, *spatial)


class Downsample(nn.Module):
    """3x3 convolution of stride 2 (``op``)."""

    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    """Nearest 2x, then a 3x3 convolution (``conv``)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode='nearest'))
