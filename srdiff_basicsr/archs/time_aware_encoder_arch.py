"""StableSR's time-aware encoder: the condition maps of its SPADEs from the clean LR latent and the timestep."""
from torch import nn

from srdiff_basicsr.archs.stablesr_blocks import (Downsample, LegacyAttention, TimestepResBlock, time_embed,
                                                  timestep_embedding)


class TimeAwareEncoder(nn.Module):
    """The encoder half of a U-Net (residual blocks with the time embedding, self-attention at the ``attention``
    downsampling factors, a middle block) whose feature before each downsampling and whose middle output are
    each mapped by a residual block (``fea_tran``) to ``out_channels``; ``forward(x, t)`` returns them keyed by
    their width, ``{str(w): (N, out_channels, h, w)}``, as the U-Net's SPADEs look them up.

    Args (the official ``EncoderUNetModelWT``'s; released: 4, 256, 256, 2, (1, 2, 4), (1, 1, 2, 2), 4 heads):
        in_channels, model_channels, out_channels, num_res_blocks, attention (downsampling factors with
        attention), channel_mult, num_heads, dropout.
    """

    def __init__(self, in_channels=4, model_channels=256, out_channels=256, num_res_blocks=2, attention=(1, 2, 4),
                 channel_mult=(1, 1, 2, 2), num_heads=4, dropout=0.0):
        super().__init__()
        self.model_channels = model_channels
        emb = 4 * model_channels
        self.time_embed = time_embed(model_channels)
        self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        ch, ds, kept = model_channels, 1, []
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [TimestepResBlock(ch, emb, mult * model_channels, dropout)]
                ch = mult * model_channels
                if ds in attention:
                    layers.append(LegacyAttention(ch, num_heads))
                self.input_blocks.append(nn.Sequential(*layers))
            if level != len(channel_mult) - 1:
                kept.append(ch)
                self.input_blocks.append(nn.Sequential(Downsample(ch)))
                ds *= 2
        self.middle_block = nn.Sequential(TimestepResBlock(ch, emb, dropout=dropout), LegacyAttention(ch, num_heads),
                                          TimestepResBlock(ch, emb, dropout=dropout))
        kept.append(ch)
        self.fea_tran = nn.ModuleList([TimestepResBlock(c, emb, out_channels, dropout) for c in kept])

    def forward(self, x, t):
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        features, h = [], x
        for block in self.input_blocks:
            if isinstance(block[0], Downsample):
                features.append(h)
            h = _run(block, h, emb)
        features.append(_run(self.middle_block, h, emb))
        return {str(f.shape[-1]): tran(f, emb) for f, tran in zip(features, self.fea_tran)}


def _run(block, h, emb):
    """A block's layers in turn; the residual blocks get the time embedding."""
    for layer in block:
        h = layer(h, emb) if isinstance(layer, TimestepResBlock) else layer(h)
    return h
