"""StableSR's denoiser: Stable Diffusion 2.1's U-Net with a SPADE in every residual block."""
import torch
from torch import nn

from srdiff_basicsr.archs.stablesr_blocks import (Downsample, GroupNorm32, TimestepResBlock, Upsample, time_embed,
                                                  timestep_embedding)


class StableSRUNet(nn.Module):
    """eps (or v) of a VAE latent x_t at timestep t, given ``cond`` = (the text ``context`` (B, 77,
    context_dim; StableSR: the empty prompt's), the time-aware encoder's ``struct_cond`` ({str(width): map})).
    Stable Diffusion's U-Net (residual blocks and linear-projection spatial transformers, diffusers'
    ``Transformer2DModel``) in the official module tree, where every residual block of the input, middle and output
    blocks applies a SPADE on the condition map of its width between its output layers and its skip add
    (``UNetModelDualcondV2``).

    Args (released, SD 2.1: 4, 4, 320, 2, (4, 2, 1), (1, 2, 4, 4), 64, 1, 1024, 256):
        in_channels, out_channels, model_channels, num_res_blocks, attention (downsampling factors with a
        transformer), channel_mult, num_head_channels, transformer_depth, context_dim, semb_channels (the
        condition maps' channels), dropout.
    """

    def __init__(self, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=2, attention=(4, 2, 1),
                 channel_mult=(1, 2, 4, 4), num_head_channels=64, transformer_depth=1, context_dim=1024,
                 semb_channels=256, dropout=0.0):
        super().__init__()
        # here, not at the top: diffusers takes seconds to import, and only a StableSR network needs it
        from diffusers.models.transformers.transformer_2d import Transformer2DModel
        self.model_channels = model_channels
        emb = 4 * model_channels
        self.divisor = 2**(len(channel_mult) - 1)  # latent pixels the size must divide by

        def res_block(ch, out):
            return TimestepResBlock(ch, emb, out, dropout, label_channels=semb_channels)

        def transformer(ch):
            return Transformer2DModel(num_attention_heads=ch // num_head_channels, attention_head_dim=num_head_channels,
                                      in_channels=ch, num_layers=transformer_depth, cross_attention_dim=context_dim,
                                      use_linear_projection=True, norm_num_groups=32)

        self.time_embed = time_embed(model_channels)
        self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        ch, ds, skips = model_channels, 1, [model_channels]
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res_block(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention:
                    layers.append(transformer(ch))
                self.input_blocks.append(nn.Sequential(*layers))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(nn.Sequential(Downsample(ch)))
                skips.append(ch)
                ds *= 2
        self.middle_block = nn.Sequential(res_block(ch, ch), transformer(ch), res_block(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + skips.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention:
                    layers.append(transformer(ch))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(nn.Sequential(*layers))
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3, padding=1))
        # the text context StableSR always samples with (the empty prompt's, stored by the converter): not in the
        # official checkpoint, which keeps the text encoder instead
        self.register_buffer('empty_context', torch.zeros(1, 77, context_dim))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def forward(self, x, t, cond):
        """eps (or v) at x_t, timesteps t, under ``cond`` = (context, struct_cond) (the family's (x, t, cond))."""
        context, struct_cond = cond
        emb = self.time_embed(timestep_embedding(t, self.model_channels).type(x.dtype))
        skips, h = [], x
        for block in self.input_blocks:
            h = self._run(block, h, emb, context, struct_cond)
            skips.append(h)
        h = self._run(self.middle_block, h, emb, context, struct_cond)
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb, context, struct_cond)
        return self.out(h)

    @staticmethod
    def _run(block, h, emb, context, struct_cond):
        for layer in block:
            if isinstance(layer, TimestepResBlock):
                h = layer(h, emb, struct_cond)
            elif isinstance(layer, (nn.Conv2d, Downsample, Upsample)):
                h = layer(h)
            else:  # a spatial transformer
                h = layer(h, encoder_hidden_states=context, return_dict=False)[0]
        return h

