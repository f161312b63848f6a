import torch
import torch.nn.functional as F
from torch import nn

from srdiff_basicsr.archs.image_statistics import ImageGroupNorm
from srdiff_basicsr.archs.srdiff_unet_arch import SinusoidalTimeEmbedding


def _conv(dim_in, dim_out, kernel, stride=1, init_scale=1.0):
    """A conv with zero bias and its default weights scaled by ``init_scale`` (ECDP's initialisation)."""
    conv = nn.Conv2d(dim_in, dim_out, kernel, stride, kernel // 2)
    with torch.no_grad():
        conv.weight.mul_(init_scale)
        conv.bias.zero_()
    return conv


def _norm(channels):
    return ImageGroupNorm(min(channels // 4, 32), channels)  # the whole image's statistics in tiles too


class ECDPResBlock(nn.Module):
    """x' = skip(x) + conv2(SiLU(GN(conv1(SiLU(GN(x))) + Linear(t_emb) + conv1x1(cond)))); conv2 starts at
    1e-3 of its default scale and a channel-changing skip at 0.1, so a new block is close to its skip."""

    def __init__(self, dim_in, dim_out, time_dim, cond_dim):
        super().__init__()
        self.time_in = nn.Linear(time_dim, dim_out)
        self.cond_in = _conv(cond_dim, dim_out, 1)
        self.norm1, self.conv1 = _norm(dim_in), _conv(dim_in, dim_out, 3)
        self.norm2, self.conv2 = _norm(dim_out), _conv(dim_out, dim_out, 3, init_scale=1e-3)
        self.skip = _conv(dim_in, dim_out, 1, init_scale=0.1) if dim_in != dim_out else nn.Identity()

    def forward(self, x, t_emb, cond):
        h = self.conv1(F.silu(self.norm1(x))) + self.time_in(t_emb)[:, :, None, None] + self.cond_in(cond)
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ECDPUNet(nn.Module):
    """ECDP's noise predictor (Yuan et al., the released ``lib/model/unet.py``'s design): a U-Net of
    GroupNorm + SiLU ResBlocks without attention, conditioned in **every** ResBlock on the encoder's
    feature maps of chosen RRDB blocks, concatenated, resized to the block's level and added by a 1x1 conv.

    Its own arch rather than options of ``SRDiffUNet``: the blocks (normalised, pre-activation), the skip
    wiring (every block's output is a skip; ``num_blocks + 1`` blocks per level on the way up), the
    up/down layers and where the condition enters all differ, so little but the time embedding is shared.

    The condition (:meth:`project_condition`, once per image) is the concatenated maps; each block resizes
    them bilinearly to its own size. ``condition_resize: lr`` (ECDP's) resizes the LR-size maps directly
    (with torchvision's antialias by default, as ECDP's ``FV.resize`` on torchvision >= 0.17: at the levels
    below LR size it low-passes); ``hr`` (this project's default) first brings them to HR size, and each
    level resizes that map: the same at HR size, a different low-pass below, and local, so a tile's condition
    is exactly the whole image's. The LR image itself is not an input, as in ECDP. Outputs ``num_out_ch``
    channels: 6 for the hybrid parametrization's two heads (eps, then x0), 3 for eps-only or x0-only. On the
    way up a map is cropped to its skip's size, as ECDP's, for sizes the U-Net does not divide.

    Args:
        channels (list[int]): widths per level (ECDP: 64, 128, 256, 256); the input conv has channels[0].
        num_blocks (int): ResBlocks per level on the way down (ECDP: 2; one more on the way up).
        time_dim (int): sinusoidal embedding size (ECDP: 128), expanded x4 by an MLP.
        scale (int): SR factor.
        encoder_num_feat (int): width of the encoder's maps (ECDP: 64).
        encoder_num_block (int): RRDB blocks of the encoder (ECDP: 23 DIV2K, 8 CelebA).
        feature_blocks (list[int]): the RRDB blocks (0-based) whose outputs condition the U-Net (ECDP:
            1, 8, 15, 22 of 23; 1, 3, 5, 7 of 8).
        num_in_ch, num_out_ch (int): channels of x_t and of the output.
        condition_resize (str): hr (resized from an HR-size map; tile-exact) | lr (from the LR maps, ECDP's).
        condition_antialias (bool): with ``lr``, resize with antialias (ECDP on torchvision >= 0.17; false as
            on torchvision <= 0.16).
    """

    def __init__(self, channels=(64, 128, 256, 256), num_blocks=2, time_dim=128, scale=4, encoder_num_feat=64,
                 encoder_num_block=23, feature_blocks=(1, 8, 15, 22), num_in_ch=3, num_out_ch=6,
                 condition_resize='hr', condition_antialias=True):
        super().__init__()
        if condition_resize not in ('hr', 'lr'):
            raise ValueError(f'ECDPUNet: condition_resize must be hr or lr, got {condition_resize!r}')
        self.condition_resize, self.condition_antialias = condition_resize, bool(condition_antialias)
        if time_dim % 2:
            raise ValueError(f'ECDPUNet: time_dim must be even, got {time_dim}')
        outside = [b for b in feature_blocks if b >= encoder_num_block]
        if outside or not feature_blocks:
            raise ValueError(f'ECDPUNet: feature_blocks must be 1 or more of the blocks 0..{encoder_num_block - 1} '
                             f'of the encoder, got {list(feature_blocks)}')
        self.scale, self.feature_blocks = scale, list(feature_blocks)
        cond_dim = encoder_num_feat * len(feature_blocks)
        emb_dim = time_dim * 4
        self.time_emb = SinusoidalTimeEmbedding(time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.in_conv = _conv(num_in_ch, channels[0], 3)

        # the way down: every block's (and downsampling's) output is a skip, as the input conv's
        self.downs, skip_dims, dim = nn.ModuleList(), [channels[0]], channels[0]
        for level, width in enumerate(channels):
            for _ in range(num_blocks):
                self.downs.append(ECDPResBlock(dim, width, emb_dim, cond_dim))
                skip_dims.append(dim := width)
            if level < len(channels) - 1:
                self.downs.append(_conv(dim, dim, 3, stride=2))
                skip_dims.append(dim)
        self.mid = nn.ModuleList([ECDPResBlock(dim, dim, emb_dim, cond_dim) for _ in range(2)])
        self.ups = nn.ModuleList()
        for level in reversed(range(len(channels))):
            for _ in range(num_blocks + 1):
                self.ups.append(ECDPResBlock(dim + skip_dims.pop(), channels[level], emb_dim, cond_dim))
                dim = channels[level]
            if level > 0:
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode='nearest'), _conv(dim, dim, 3)))
        self.out = nn.Sequential(_norm(dim), nn.SiLU(), _conv(dim, num_out_ch, 3))
        self.divisor = 2**(len(channels) - 1)
        self.window_grid = 1  # no window attention

    def project_condition(self, features, lr_up):
        """The condition, once per image: the chosen blocks' maps (``features[b]``) concatenated, upsampled
        bilinearly to HR size with ``condition_resize: hr``. ``lr_up`` is not used (ECDP does not condition on
        the LR image)."""
        cond = torch.cat([features[b] for b in self.feature_blocks], dim=1)
        if self.condition_resize == 'lr':
            return cond
        return F.interpolate(cond, scale_factor=self.scale, mode='bilinear', align_corners=False)

    def resize_condition(self, cond, size):
        """The condition at a level of ``size`` (itself at its own size, as torchvision's resize)."""
        if size == tuple(cond.shape[-2:]):
            return cond
        antialias = self.condition_resize == 'lr' and self.condition_antialias
        return F.interpolate(cond, size=size, mode='bilinear', align_corners=False, antialias=antialias)

    def forward(self, x, t, cond):
        t_emb = self.time_mlp(self.time_emb(t))
        level_conds = {}

        def at(h):  # the condition at h's size, resized once per level
            size = tuple(h.shape[-2:])
            if size not in level_conds:
                level_conds[size] = self.resize_condition(cond, size)
            return level_conds[size]

        h = self.in_conv(x)
        skips = [h]
        for layer in self.downs:
            h = layer(h, t_emb, at(h)) if isinstance(layer, ECDPResBlock) else layer(h)
            skips.append(h)
        for block in self.mid:
            h = block(h, t_emb, at(h))
        for layer in self.ups:
            if isinstance(layer, ECDPResBlock):
                skip = skips.pop()
                h = torch.cat([h[..., :skip.shape[-2], :skip.shape[-1]], skip], dim=1)
                h = layer(h, t_emb, at(h))
            else:
                h = layer(h)
        return self.out(h)
