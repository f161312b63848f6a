"""LPIPS (Zhang et al. 2018) as a BasicSR metric, with the AlexNet trunk the SRDiff paper reports."""
import warnings
from os import path as osp

import torch
from basicsr.utils.registry import METRIC_REGISTRY

from srdiff_basicsr.metrics.network_input import network_inputs

# torchvision's ImageNet weights that lpips builds its trunk from (downloaded at first use upstream)
TRUNK_FILES = {'alex': 'alexnet-owt-7be5be79.pth', 'vgg': 'vgg16-397923af.pth'}
_networks = {}


def lpips_network(net='alex', device='cpu', random_trunk=False):
    """The LPIPS network, built once per (net, device). ``random_trunk`` skips the ImageNet weights
    (only for tests of the plumbing: its values mean nothing)."""
    key = (net, str(device), random_trunk)
    if key not in _networks:
        if net not in TRUNK_FILES:
            raise ValueError(f"calculate_lpips: net must be one of {sorted(TRUNK_FILES)}, got {net!r}")
        if not random_trunk:
            weights = osp.join(torch.hub.get_dir(), 'checkpoints', TRUNK_FILES[net])
            if not osp.isfile(weights):
                raise FileNotFoundError(
                    f'LPIPS ({net}) needs torchvision\'s ImageNet weights, which cannot be downloaded here: put '
                    f'{TRUNK_FILES[net]} (https://download.pytorch.org/models/{TRUNK_FILES[net]}) at {weights} '
                    '(or set TORCH_HOME to a folder whose hub/checkpoints/ has it)')
        import lpips
        with warnings.catch_warnings():  # lpips 0.1.4 uses torchvision's deprecated `pretrained=`
            warnings.simplefilter('ignore', UserWarning)
            network = lpips.LPIPS(net=net, pnet_rand=random_trunk, verbose=False)
        _networks[key] = network.eval().requires_grad_(False).to(device)
    return _networks[key]


@METRIC_REGISTRY.register()
def calculate_lpips(img, img2, crop_border=0, net='alex', device=None, random_trunk=False, **kwargs):
    """LPIPS distance between two uint8 BGR HWC images (lower is better; identical images give 0).

    Options: net (alex, as the paper | vgg), crop_border, device (default: CUDA when available).
    """
    x, y = network_inputs(img, img2, crop_border, 32, 'calculate_lpips', device)  # AlexNet/VGG pool below 32
    with torch.no_grad():
        return lpips_network(net, x.device, random_trunk)(x, y).item()
