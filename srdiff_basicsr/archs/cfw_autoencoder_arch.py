"""Stable Diffusion's VAE (diffusers' AutoencoderKL encoder and decoder) with StableSR's controllable feature
wrapping (CFW): the encoder's features of the LR image, fused into decoder levels 1 and 2 with a fidelity weight w
(0: the plain decoder, more realistic; 1: closer to the LR image)."""
import torch
from torch import nn

from srdiff_basicsr.archs.rrdb_blocks import RRDB

FUSED_LEVELS = (1, 2)  # the official Decoder_Mix fuses these resolution levels (0: the full size), hard-coded


class FusionResBlock(nn.Module):
    """GN-SiLU-conv3x3 twice plus the input (a 1x1 convolution of it when the width changes); GroupNorm(32, 1e-6)."""

    def __init__(self, channels, out_channels):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, channels, eps=1e-6)
        self.conv1 = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(32, out_channels, eps=1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, out_channels, 1) if channels != out_channels else None

    def forward(self, x):
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return (x if self.conv_out is None else self.conv_out(x)) + h


class CFWFusion(nn.Module):
    """dec + w * F(cat[enc, dec]) with F = residual block (2C -> C), two RRDBs (growth 32), residual block
    (the official ``Fuse_sft_block_RRDB``)."""

    def __init__(self, channels):
        super().__init__()
        self.encode_enc_1 = FusionResBlock(2 * channels, channels)
        self.encode_enc_2 = nn.Sequential(RRDB(channels, 32), RRDB(channels, 32))
        self.encode_enc_3 = FusionResBlock(channels, channels)

    def forward(self, enc, dec, w):
        return dec + w * self.encode_enc_3(self.encode_enc_2(self.encode_enc_1(torch.cat([enc, dec], dim=1))))


class CFWAutoencoder(nn.Module):
    """The KL autoencoder of latent diffusion, its encoder also returning the features CFW fuses.

    Args (released, SD's VAE: 3, 128, (1, 2, 4, 4), 2, 4, 4):
        in_channels (also the output's), ch, ch_mult, num_res_blocks, z_channels, embed_dim (the latent's channels);
        cfw: build the fusion layers (``fusion``); without them ``decode`` is the plain VAE decoder.
    """

    def __init__(self, in_channels=3, ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4, embed_dim=4,
                 cfw=True):
        super().__init__()
        from diffusers.models.autoencoders.vae import Decoder, Encoder  # here: diffusers takes seconds to import
        widths = [ch * m for m in ch_mult]
        self.encoder = Encoder(in_channels, z_channels, ('DownEncoderBlock2D', ) * len(widths), widths,
                               num_res_blocks, double_z=True)
        self.decoder = Decoder(z_channels, in_channels, ('UpDecoderBlock2D', ) * len(widths), widths, num_res_blocks)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.fusion = nn.ModuleList([CFWFusion(widths[level]) for level in FUSED_LEVELS]) if cfw else None
        self.factor = 2**(len(widths) - 1)  # image pixels per latent pixel

    def forward(self, image, z, w=1.0):
        """CFW's training pass (the official ``AutoencoderKLResi.forward``): the latent z (unscaled) decoded with
        the features of ``image`` (the upsampled LR, in [-1, 1]) fused at weight ``w``."""
        return self.decode(z, self.encode(image)[1], w)

    def encode(self, image):
        """(mean, logvar) of the posterior of images in [-1, 1] (logvar clamped to [-30, 20], as the official), and
        the features CFW fuses: each fused level's last residual block output, before its downsampling."""
        enc, features = self.encoder, []
        h = enc.conv_in(image)
        for level, block in enumerate(enc.down_blocks):
            for resnet in block.resnets:
                h = resnet(h, None)
            if level in FUSED_LEVELS:
                features.append(h)
            for down in block.downsamplers or []:
                h = down(h)
        h = enc.conv_out(enc.conv_act(enc.conv_norm_out(enc.mid_block(h))))
        mean, logvar = self.quant_conv(h).chunk(2, dim=1)
        return (mean, logvar.clamp(-30.0, 20.0)), features

    def decode(self, z, features=None, w=0.5):
        """Images in [-1, 1] of (unscaled) latents z; with the encoder's ``features``, CFW fused at weight ``w`` (a VAE
        without CFW ignores them)."""
        dec = self.decoder
        h = dec.mid_block(dec.conv_in(self.post_quant_conv(z)), None)
        levels = len(dec.up_blocks)
        for j, block in enumerate(dec.up_blocks):
            level = levels - 1 - j
            for resnet in block.resnets:
                h = resnet(h, None)
            if self.fusion is not None and features is not None and level in FUSED_LEVELS:
                h = self.fusion[FUSED_LEVELS.index(level)](features[FUSED_LEVELS.index(level)], h, w)
            for up in block.upsamplers or []:
                h = up(h)
        return dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))


def posterior_sample(mean, logvar, noise):
    """mean + exp(logvar / 2) noise: a draw of the diagonal Gaussian posterior (the official ``sample()``)."""
    return mean + torch.exp(0.5 * logvar) * noise
