"""MUSIQ and CLIPIQA, the no-reference metrics real-world SR is judged by, as BasicSR metrics through pyiqa (an
optional package). pyiqa downloads its weights on first use; a machine that cannot gets the missing file named
instead of a download attempted."""
from os import path as osp

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

# the files pyiqa (0.1.x) fetches for each metric, under torch.hub's folder ($TORCH_HOME/hub)
PYIQA_WEIGHTS = {'musiq': ('pyiqa/musiq_koniq_ckpt-e95806b9.pth',), 'clipiqa': ('clip/RN50.pt',)}
_networks = {}


def pyiqa_unavailable(name):
    """Why pyiqa cannot compute ``name`` offline (a sentence), or None when it can."""
    try:
        import pyiqa  # noqa: F401
    except ImportError as error:
        if error.name != 'pyiqa':
            return f'pyiqa fails to import: {error}'
        return 'pyiqa is not installed (pip install pyiqa)'
    missing = [weights for weights in (osp.join(torch.hub.get_dir(), file) for file in PYIQA_WEIGHTS[name])
               if not osp.isfile(weights)]
    if missing:
        return (f"pyiqa's weights are not on disk ({', '.join(missing)}); on a machine with internet, "
                f"python -c \"import pyiqa; pyiqa.create_metric('{name}')\" downloads them")
    return None


def pyiqa_network(name, device='cpu'):
    """pyiqa's metric ``name``, built once per device."""
    key = (name, str(device))
    if key not in _networks:
        reason = pyiqa_unavailable(name)
        if reason:
            raise FileNotFoundError(f'{name.upper()}: {reason}')
        import pyiqa
        _networks[key] = pyiqa.create_metric(name, device=torch.device(device))
    return _networks[key]


def pyiqa_score(name, img, device):
    """pyiqa's score of a uint8 BGR HWC image (BasicSR's metric data); pyiqa takes RGB in [0, 1], NCHW."""
    rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return float(pyiqa_network(name, device)(rgb.to(device)))


@METRIC_REGISTRY.register()
def calculate_musiq(img, device='cpu', **kwargs):
    """MUSIQ (Ke et al. 2021, KonIQ-10k weights): no reference, higher is better (about 0-100)."""
    return pyiqa_score('musiq', img, device)


@METRIC_REGISTRY.register()
def calculate_clipiqa(img, device='cpu', **kwargs):
    """CLIPIQA (Wang et al. 2023, CLIP RN50's antonym prompts): no reference, higher is better (0-1)."""
    return pyiqa_score('clipiqa', img, device)
