"""Weight files: BasicSR's ``.pth`` (``{param_key: state_dict}``) and ``.safetensors`` (one flat state
dict, as traiNNer-redux and spandrel read them), read and written, with errors that say what does not fit."""
from os import path as osp

import torch

from srdiff_basicsr.errors import WeightsError
from srdiff_basicsr.files import atomic_write

WEIGHT_EXTENSIONS = ('.pth', '.safetensors')


def read_state_dict(path, param_key='params', option='path', fallback=True):
    """The state dict of a ``.safetensors`` file, or the one stored under ``param_key`` in a ``.pth``
    (BasicSR's ``{param_key: state_dict}`` layout; ``params`` when ``param_key`` is absent, as BasicSR, unless
    not ``fallback``: then an error naming the keys the file has)."""
    if not osp.isfile(path):
        raise WeightsError(f'{option}: no such weight file: {path}')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            loaded = load_file(path)
        else:
            loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:
        raise WeightsError(f'{option}: cannot read {path} as a weight file: {error}') from None
    if param_key is not None and isinstance(loaded, dict) and param_key in loaded:
        loaded = loaded[param_key]
    elif not fallback and isinstance(loaded, dict) and any(isinstance(v, dict) for v in loaded.values()):
        raise WeightsError(f'{option}: {path} has no {param_key!r}; it has '
                           f'{", ".join(sorted(k for k, v in loaded.items() if isinstance(v, dict)))}')
    elif isinstance(loaded, dict) and 'params' in loaded:
        loaded = loaded['params']  # BasicSR's fallback when e.g. params_ema is absent
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise WeightsError(f'{option}: {path} holds no state dict under key {param_key!r}')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in loaded.items()}


def load_weights(net, path, param_key='params', strict=True, option='path', may_miss=None):
    """Load ``path`` into ``net``; on a mismatch, name the missing, unexpected and misshapen keys. ``may_miss(key)``:
    the keys of ``net`` the file may lack even when strict (they keep their initialisation). Returns those."""
    state_dict = read_state_dict(path, param_key, option)
    own = net.state_dict()
    initialised = sorted(k for k in set(own) - set(state_dict) if may_miss is not None and may_miss(k))
    missing = sorted(set(own) - set(state_dict) - set(initialised))
    unexpected = sorted(set(state_dict) - set(own))
    misshapen = [f'{k}: file {tuple(state_dict[k].shape)}, network {tuple(own[k].shape)}'
                 for k in sorted(set(own) & set(state_dict)) if own[k].shape != state_dict[k].shape]
    if misshapen or (strict and (missing or unexpected)):
        lines = []
        for title, keys in (('missing in the file', missing), ('not in the network', unexpected),
                            ('shapes differ', misshapen)):
            if keys:
                shown = ', '.join(keys[:6]) + (f', ... ({len(keys)} in all)' if len(keys) > 6 else '')
                lines.append(f'{title}: {shown}')
        raise WeightsError(f'{option}: {path} does not fit {type(net).__name__} as configured '
                           '(check the network options against the run that wrote the file):\n  ' + '\n  '.join(lines))
    net.load_state_dict(state_dict, strict=strict and not initialised)
    return initialised


def write_state_dict(state_dict, path, param_key='params'):
    """``path`` ending in ``.safetensors``: the flat state dict; otherwise BasicSR's ``{param_key: state_dict}``.
    Written atomically."""
    state_dict = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    with atomic_write(path) as tmp:
        if path.endswith('.safetensors'):
            from safetensors.torch import save_file
            save_file(state_dict, tmp)
        else:
            torch.save({param_key: state_dict}, tmp)
