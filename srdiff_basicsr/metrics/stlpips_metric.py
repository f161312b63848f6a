"""ST-LPIPS (shift-tolerant LPIPS; Ghildyal & Liu, ECCV 2022) as a BasicSR metric: a perceptual distance that
works offline, because the ``stlpips-pytorch`` wheel ships its complete weights (trunk and heads).

The network is built here from the paper's published definition (the AlexNet variant: stride-1 first conv,
blur-pool downsampling with reflect padding) and the wheel's weight file is loaded into it; the wheel's own
modules are not imported (they need IPython and torchsummary).
"""
from importlib import resources

import torch
import torch.nn.functional as F
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from srdiff_basicsr.metrics.network_input import network_inputs

WEIGHTS = ('stlpips_pytorch', 'weights/vST0.0/alex_shift_tolerant.pth')
TAPS = (2, 6, 10, 12, 14)  # the trunk's layers whose outputs are compared (after each ReLU)
MIN_SIZE = 21  # the reflect padding of the trunk's last blur-pool needs 3 pixels there
_networks = {}


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect padding of 2, the 3x3 binomial filter, per channel."""

    def __init__(self, channels):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer('filt', (taps[:, None] * taps[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x):
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode='reflect'), self.filt, stride=2, groups=x.shape[1])


class STLPIPS(nn.Module):
    """Distance between two RGB batches in [-1, 1]: unit-normalised trunk features, squared differences
    weighted per channel by the learned heads, averaged over the image and summed over the five layers."""

    def __init__(self):
        super().__init__()
        self.register_buffer('shift', torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1))
        self.register_buffer('scale', torch.tensor([.458, .448, .450]).view(1, 3, 1, 1))
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 64, 11, padding=2), BlurPool(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=1), BlurPool(64), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=1), BlurPool(192), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 1, bias=False) for channels in (64, 192, 384, 256, 256))

    def features(self, x):
        x = (x - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.trunk):
            x = layer(x)
            if index in TAPS:
                taps.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    def forward(self, x, y):
        return sum(head((fx - fy) ** 2).mean(dim=(2, 3))
                   for head, fx, fy in zip(self.heads, self.features(x), self.features(y))).flatten()

    def load_published_weights(self, path):
        """The wheel's file names the trunk ``net.slice<k>.<index>`` (indices as in ``self.trunk``), the heads
        ``lin<k>.model.1``; every tensor of the file is used."""
        renamed = {}
        for key, value in torch.load(path, map_location='cpu', weights_only=True).items():
            if key.startswith('net.slice'):
                key = 'trunk.' + key.split('.', 2)[2]
            elif key.startswith('lin'):
                key = f'heads.{key[3]}.weight'
            elif key.startswith('scaling_layer.'):
                key = key[len('scaling_layer.'):]
            renamed[key] = value
        self.load_state_dict(renamed, strict=True)
        return self


def weights_file():
    package, name = WEIGHTS
    try:
        path = resources.files(package) / name
    except ModuleNotFoundError:
        raise FileNotFoundError('ST-LPIPS needs the weights shipped in the stlpips-pytorch wheel: '
                                'pip install stlpips-pytorch') from None
    if not path.is_file():
        raise FileNotFoundError(f'ST-LPIPS: no weight file at {path} (reinstall stlpips-pytorch)')
    return path


def stlpips_network(device='cpu'):
    """The ST-LPIPS network with the published weights, built once per device."""
    key = str(device)
    if key not in _networks:
        network = STLPIPS().load_published_weights(weights_file())
        _networks[key] = network.eval().requires_grad_(False).to(device)
    return _networks[key]


@METRIC_REGISTRY.register()
def calculate_stlpips(img, img2, crop_border=0, device=None, **kwargs):
    """ST-LPIPS distance (AlexNet) between two uint8 BGR HWC images: lower is better, identical images give 0.
    Not LPIPS: its trunk is anti-aliased and its heads were trained again; the numbers are not comparable with
    LPIPS values in papers. Options: crop_border, device (default: CUDA when available)."""
    x, y = network_inputs(img, img2, crop_border, MIN_SIZE, 'calculate_stlpips', device)
    with torch.no_grad():
        return stlpips_network(x.device)(x, y).item()
