"""LPIPS (Zhang et al. 2018) as a BasicSR metric, with the AlexNet trunk the SRDiff paper reports."""
import warnings
from os import path as osp

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

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


def _to_lpips_input(img, device):
    """uint8 BGR HWC (BasicSR's metric data) -> RGB NCHW in [-1, 1]."""
    rgb = np.ascontiguousarray(img[..., ::-1]).astype(np.float32) / 127.5 - 1
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)


@METRIC_REGISTRY.register()
def calculate_lpips(img, img2, crop_border=0, net='alex', device=None, random_trunk=False, **kwargs):
    """LPIPS distance between two uint8 BGR HWC images (lower is better; identical images give 0).

    Options: net (alex, as the paper | vgg), crop_border, device (default: CUDA when available).
    """
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if crop_border:
        inner = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
        img, img2 = img[inner], img2[inner]
    if min(img.shape[:2]) < 32:  # the AlexNet/VGG trunk pools below 1 pixel
        raise ValueError(f'calculate_lpips: images must be at least 32x32 (after crop_border), got {img.shape[:2]}')
    network = lpips_network(net, device, random_trunk)
    with torch.no_grad():
        return network(_to_lpips_input(img, device), _to_lpips_input(img2, device)).item()

