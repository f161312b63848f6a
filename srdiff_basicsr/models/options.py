"""An SRDiff-family model's options: defaults filled in (``complete_options``), then checked before anything is built
(``check_options``), errors naming the option."""
import copy
from os import path as osp

import yaml
from basicsr.utils.registry import LOSS_REGISTRY

from srdiff_basicsr.archs.arch_options import meta_network
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.samplers import sampler_options
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.diffusion.tiling import tile_options
from srdiff_basicsr.errors import OptionsError, is_int, is_number, require
from srdiff_basicsr.execution import check_precision
from srdiff_basicsr.loading.model_files import experiment_options_file
from srdiff_basicsr.models.evaluation import PROTOCOL_NAMES
from srdiff_basicsr.models.objectives import OBJECTIVES, objective_options
from srdiff_basicsr.network_options import complete_network_options, diffusion_options, space_options
from srdiff_basicsr.pipeline import check_colour_fix

# the official auxiliary L1 of a trained encoder, on [-1, 1] images: twice the L1 on BasicSR's [0, 1]
ENCODER_LOSSES_DEFAULT = {'l1': {'type': 'L1Loss', 'loss_weight': 2.0}}


def complete_options(opt):
    """An SRDiffModel's options with their defaults filled in (in place; returned), before ``check_options``:
    the network sections' sizes and scale (``complete_network_options``, which refuses sections it cannot
    complete), ``train.pixel_opt`` (the space's loss: the paper's L1; StableSR's MSE on a latent space),
    ``train.head_weights`` (1 per head, several heads only), ``train.encoder_losses`` (a trained encoder only) and
    ``train.objective`` (``{type: noise}`` by default; its own completion: defaults, a student's starting weights)."""
    complete_network_options(opt)
    train_opt = opt.get('train')
    if opt.get('is_train') and isinstance(train_opt, dict):
        diffusion = diffusion_options(opt.get('diffusion'))
        train_opt.setdefault('pixel_opt', dict(SPACES[diffusion['space']].loss))
        heads = PARAMETRIZATIONS[diffusion['parametrization']].heads
        if len(heads) > 1:
            train_opt.setdefault('head_weights', {head: 1.0 for head in heads})
        if 'optim_encoder' in train_opt:
            train_opt.setdefault('encoder_losses', copy.deepcopy(ENCODER_LOSSES_DEFAULT))
        objective = train_opt['objective'] = objective_options(opt)
        if OBJECTIVES[objective['type']].complete:
            OBJECTIVES[objective['type']].complete(opt, objective)
    return opt


def check_options(opt):
    """Fail early, naming the option, instead of deep inside torch; ``opt`` completed (``complete_options``),
    not changed."""
    path_opt = opt.get('path') or {}
    diffusion = diffusion_options(opt.get('diffusion'))
    entry = SPACES[diffusion['space']]
    for key, why in entry.required_weights.items():
        if path_opt.get(key) is None:
            raise OptionsError(f'path.{key} is not set: {why}')
    objective = ((opt.get('train') or {}).get('objective') or {}).get('type') if opt.get('is_train') else None
    if objective in entry.refuses:
        raise OptionsError(f'train.objective: {objective}: {entry.refuses[objective]}')
    if opt.get('device') and opt.get('dist'):
        raise OptionsError('device: not with a launcher (each process takes the GPU of its LOCAL_RANK)')
    _check_val(opt.get('val') or {}, diffusion['timesteps'], _device(opt))
    unet = meta_network(opt['network_g'])  # the space as the pipeline builds it (its networks on the meta device):
    space = entry.build(opt['scale'], {s: meta_network(opt[s]) for s in entry.networks}, **space_options(diffusion))
    tile_options((opt.get('val') or {}).get('tile'), space.canvas_grid, unet.divisor, 'val.tile',
                 getattr(unet, 'window_grid', 1), space.factor)
    train_opt = opt.get('train')
    if opt.get('is_train') and train_opt is not None:
        _check_train(train_opt, opt)
    if not opt.get('is_train'):
        if path_opt.get('pretrain_network_g') is None:
            raise OptionsError('path.pretrain_network_g is not set: a test would sample with an untrained U-Net; '
                               'point it at models/net_g_<iter>.pth of a training run')
        _check_against_training_options(opt, diffusion)


def _check_train(train_opt, opt):
    if train_opt.get('perceptual_opt'):
        raise OptionsError('train.perceptual_opt: SRDiff is trained on the noise prediction, where a perceptual '
                           'loss does not apply; use train.pixel_opt (L1Loss or MSELoss)')
    check_precision(train_opt.get('precision', 'auto'), _device(opt), 'train')
    require(train_opt.get('ema_decay', 0), lambda v: is_number(v) and 0 <= v < 1, 'train.ema_decay',
            'a number from 0 (no EMA) to below 1')
    for optim in ('optim_g', 'optim_encoder') if 'optim_encoder' in train_opt else ('optim_g', ):
        require((train_opt.get(optim) or {}).get('lr'), lambda v: is_number(v) and v > 0, f'train.{optim}.lr',
                "a number > 0 (YAML reads 1e-4 as a string: write !!float 1e-4 or 0.0001)")
    _check_encoder_losses(train_opt, opt)
    _check_head_weights(train_opt, diffusion_options(opt.get('diffusion'))['parametrization'])
    objective = OBJECTIVES[objective_options(opt)['type']]
    if objective.check:
        objective.check(train_opt['objective'])
    require(train_opt.get('grad_clip'), lambda v: v is None or (
        isinstance(v, dict) and len(v) == 1 and set(v) <= {'norm', 'value'} and all(
            is_number(c) and c > 0 for c in v.values())), 'train.grad_clip', '{norm: c} or {value: c} with c > 0')
    require(train_opt.get('skip_nonfinite', False), lambda v: isinstance(v, bool), 'train.skip_nonfinite',
            'true or false')
    require(train_opt.get('collapse', {}), lambda v: v is None or (
        isinstance(v, dict) and set(v) <= {'intervals', 'level'} and is_int(v.get('intervals', 1))
        and v.get('intervals', 1) >= 1 and is_number(v.get('level', 0.5)) and 0 < v.get('level', 0.5) <= 1),
        'train.collapse', '~ (off) or {intervals: an integer >= 1, level: a number in (0, 1]}')


def _check_head_weights(train_opt, parametrization):
    """``train.head_weights`` (default 1 per head) only for a network with several heads."""
    heads = PARAMETRIZATIONS[parametrization].heads
    if len(heads) == 1:
        if 'head_weights' in train_opt:
            raise OptionsError(f'train.head_weights: diffusion.parametrization {parametrization} has one output; '
                               'head weights are for the hybrid parametrization (eps and x0 heads)')
        return
    weights = train_opt.get('head_weights')
    require(weights, lambda v: isinstance(v, dict) and set(v) == set(heads) and all(
        is_number(w) and w >= 0 for w in v.values()) and any(w > 0 for w in v.values()), 'train.head_weights',
        f'a weight >= 0 for each of the heads {list(heads)}, not all 0')


def _check_encoder_losses(train_opt, opt):
    """``train.encoder_losses`` (default ``ENCODER_LOSSES_DEFAULT``; ``{}``: none, as ECDP) only for a trained
    encoder; registered types."""
    if 'optim_encoder' not in train_opt:
        if train_opt.get('encoder_losses'):
            raise OptionsError('train.encoder_losses: the encoder is frozen; set train.optim_encoder (e.g. {type: '
                               'Adam, lr: !!float 1e-5}) to train it with the U-Net')
        return
    losses = train_opt.get('encoder_losses')
    require(losses, lambda v: isinstance(v, dict), 'train.encoder_losses',
            'a mapping of names to BasicSR loss options, e.g. {l1: {type: L1Loss, loss_weight: 2.0}}, or {}')
    if not losses and opt.get('dist') and not opt.get('find_unused_parameters'):
        raise OptionsError('train.encoder_losses is empty: the encoder\'s SR head gets no gradient, which DDP refuses '
                           'unless find_unused_parameters: true (set it at the top level of the options)')
    for name, loss_opt in losses.items():
        loss_type = (loss_opt or {}).get('type') if isinstance(loss_opt, dict) else None
        if loss_type not in LOSS_REGISTRY:
            raise OptionsError(f'train.encoder_losses.{name}.type: no loss named {loss_type!r} in BasicSR\'s registry; '
                               f'known: {sorted(name for name, _ in LOSS_REGISTRY)}')


def _check_val(val_opt, num_timesteps, device):
    require(val_opt.get('num_samples', 1), lambda v: is_int(v) and v >= 1, 'val.num_samples', 'an integer >= 1')
    require(val_opt.get('seed'), lambda v: v is None or is_int(v), 'val.seed', 'an integer')
    protocol = val_opt.get('protocol')
    require(protocol, lambda v: v is None or v in PROTOCOL_NAMES, 'val.protocol', f'one of {sorted(PROTOCOL_NAMES)}')
    sampler_options(val_opt.get('sampler'), num_timesteps, 'val.sampler')
    check_colour_fix(val_opt.get('colour_fix', 'none'), 'val')
    check_precision(val_opt.get('precision', 'auto'), device, 'val')


def _check_against_training_options(opt, diffusion):
    """A test of ``experiments/<name>/models/net_g_*.pth`` whose diffusion or network options differ from the
    ones in ``experiments/<name>/<name>.yml`` (the run that trained the weights) would sample wrongly."""
    weights = opt['path']['pretrain_network_g']
    trained_file = experiment_options_file(osp.dirname(osp.dirname(osp.abspath(weights))))
    if trained_file is None:
        return  # not an experiment folder (or an ambiguous one): nothing to compare with
    try:
        with open(trained_file) as f:
            trained = yaml.safe_load(f)
        trained_diffusion = diffusion_options(trained.get('diffusion'))
        sections = ('scale', 'network_g', 'network_encoder', 'diffusion',
                    *SPACES[trained_diffusion['space']].networks)
        trained_networks = complete_network_options({key: trained.get(key) for key in sections})
    except (OSError, yaml.YAMLError, KeyError, TypeError, OptionsError):
        return  # not an SRDiff training options file
    differ = [f'diffusion.{key}: {diffusion[key]!r} here, {trained_diffusion[key]!r} in training'
              for key in diffusion if diffusion[key] != trained_diffusion[key]]
    differ += [f'network_g.{key}: {opt["network_g"].get(key)!r} here, {value!r} in training'
               for key, value in trained_networks['network_g'].items() if opt['network_g'].get(key) != value]
    if differ:
        raise OptionsError(f'{weights} was trained with other options ({trained_file}): ' + '; '.join(differ))


def _device(opt):
    return opt.get('device') or ('cuda' if opt.get('num_gpu', 0) != 0 else 'cpu')
