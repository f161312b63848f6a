"""The PatchGAN discriminator (Isola et al. 2017) of the LDM/taming autoencoder losses, which StableSR's CFW
stage trains: strided 4x4 convolutions with BatchNorm and LeakyReLU(0.2), one logit per overlapping patch."""
from torch import nn


class PatchGANDiscriminator(nn.Module):
    """Logits (N, 1, h, w) of images (N, num_in_ch, H, W), each seeing a 70x70 patch at 3 layers.

    Args (StableSR's CFW stage: 3, 64, 3): num_in_ch, num_feat (the first layer's width, doubled per layer up to
    8x), num_layers (stride-2 layers). ``main`` holds the layers in the taming/LDM order, so the official
    ``loss.discriminator.*`` weights load by name; initialised as theirs (convolutions N(0, 0.02), BatchNorm
    scales N(1, 0.02)).
    """

    def __init__(self, num_in_ch=3, num_feat=64, num_layers=3):
        super().__init__()
        widths = [num_feat * min(2**n, 8) for n in range(num_layers + 1)]
        layers = [nn.Conv2d(num_in_ch, num_feat, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for n in range(1, num_layers + 1):
            stride = 2 if n < num_layers else 1  # the last layer keeps the resolution
            layers += [nn.Conv2d(widths[n - 1], widths[n], 4, stride, 1, bias=False), nn.BatchNorm2d(widths[n]),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[num_layers], 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.main(x)
