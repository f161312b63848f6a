"""ECDP's image-quality fine-tuning as options: ``train.objective: {type: image_quality, ...}`` completed and checked, with the VGG weights that
BasicSR's perceptual loss needs located before any work (BasicSR would try to download them mid-run)."""
import copy
import os
from os import path as osp

import torch
from basicsr.utils.registry import LOSS_REGISTRY

from srdiff_basicsr.diffusion.samplers import ODE_METHODS
from srdiff_basicsr.errors import OptionsError, is_number, require

# ECDP: L1 between VGG19 features up to conv5_4 (features[:35], ImageNet-normalised), weight 0.5 (DIV2K)
IMAGE_QUALITY_DEFAULTS = {
    'loss': {'type': 'PerceptualLoss', 'layer_weights': {'conv5_4': 1.0}, 'vgg_type': 'vgg19', 'use_input_norm': True,
             'range_norm': False, 'perceptual_weight': 0.5, 'style_weight': 0.0, 'criterion': 'l1'},
    'rtol': 1e-3, 'atol': 1e-3, 'method': 'dopri5', 'adjoint': True, 'flow': 'ode', 't_end': 0.1}
# flow: the sampler whose solve is back-propagated: ode (this project's, to step 0 and the denoiser's x0 there) or
# ode_vp (ECDP's: in the VP SDE's time to t_end, its state there)
FLOWS = ('ode', 'ode_vp')


def vgg_weight_files(vgg_type):
    """Where BasicSR's ``VGGFeatureExtractor`` finds ImageNet weights (its own path, read for any VGG type, then
    torchvision's download cache), and the file's address."""
    from basicsr.archs import vgg_arch
    from torchvision.models import get_model_weights
    url = get_model_weights(vgg_type).IMAGENET1K_V1.url
    return [vgg_arch.VGG_PRETRAIN_PATH, osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))], url


def complete_image_quality(section):
    """The ``image_quality`` objective's options completed with ``IMAGE_QUALITY_DEFAULTS`` (in place; the loss taken
    whole when given)."""
    for key, value in IMAGE_QUALITY_DEFAULTS.items():
        section.setdefault(key, copy.deepcopy(value))


def check_image_quality(section):
    """The ``image_quality`` objective's options (completed) checked; a VGG-based loss whose weights are on no path
    stops here, naming the file and where to put it."""
    where = 'train.objective'
    unknown = sorted(set(section) - set(IMAGE_QUALITY_DEFAULTS) - {'type'})
    if unknown:
        raise OptionsError(f'{where}: unknown option(s) {unknown} of image_quality; known: '
                           f'{sorted(IMAGE_QUALITY_DEFAULTS)}')
    loss_type = section['loss'].get('type') if isinstance(section['loss'], dict) else None
    if loss_type not in LOSS_REGISTRY:
        raise OptionsError(f"{where}.loss.type: no loss named {loss_type!r} in BasicSR's registry")
    for key in ('rtol', 'atol'):
        require(section[key], lambda v: is_number(v) and v > 0, f'{where}.{key}', 'a number > 0')
    require(section['method'], lambda v: v in ODE_METHODS, f'{where}.method', f'one of {ODE_METHODS}')
    require(section['adjoint'], lambda v: isinstance(v, bool), f'{where}.adjoint', 'true or false')
    require(section['flow'], lambda v: v in FLOWS, f'{where}.flow', f'one of {FLOWS}')
    require(section['t_end'], lambda v: is_number(v) and v > 0, f'{where}.t_end', 'a number > 0')
    if loss_type == 'PerceptualLoss':
        vgg_type = section['loss'].get('vgg_type', 'vgg19')
        files, url = vgg_weight_files(vgg_type)
        if not any(osp.isfile(f) for f in files):
            raise OptionsError(f"{where}.loss: the {vgg_type} ImageNet weights of BasicSR's PerceptualLoss "
                               f'are missing (this machine cannot download them during a run): put {url} at '
                               f'{osp.join(os.getcwd(), files[0])} or {files[1]}')
