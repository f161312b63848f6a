"""A ``network_*`` options section checked against the constructor of its network (registered type, known options,
sizes, the constructor's own checks on the meta device), and the network built from it."""
import inspect

import torch

from srdiff_basicsr.archs import ARCHS
from srdiff_basicsr.errors import OptionsError, is_int, require


def meta_network(arch_opt):
    """The network of an ``network_*`` section of ours on the meta device (no memory): its constructor's checks
    as an OptionsError, and its attributes (``divisor``, ``window_grid``) for other checks."""
    cls = ARCHS[arch_opt['type']]
    try:
        with torch.device('meta'):
            return cls(**{key: value for key, value in arch_opt.items() if key != 'type'})
    except ValueError as error:
        raise OptionsError(str(error)) from None


def arch_default(arch_type, option):
    """The default of a constructor argument of one of our archs (None when it has none)."""
    parameter = inspect.signature(ARCHS[arch_type].__init__).parameters.get(option)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def check_arch_options(section, arch_opt, registry=ARCHS):
    """A ``network_*`` section: a type of ``registry`` (ours; the adapter passes BasicSR's ARCH_REGISTRY, which
    holds them too), options its constructor takes; for our archs, sizes >= 1, switches true or false, and
    whatever else their constructors check."""
    arch_type = arch_opt.get('type')
    if arch_type not in registry:
        raise OptionsError(f'{section}.type: no network named {arch_type!r} is registered' if registry is not ARCHS
                           else f'{section}.type: {arch_type!r} is not a network of srdiff_basicsr; known: {sorted(ARCHS)}')
    cls = registry.get(arch_type)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(arch_opt) - {'type'} - set(params))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        known = [p for p in params if p != 'self']
        raise OptionsError(f'{section}: unknown option(s) {unknown} for {arch_type}; known: {known}')
    if cls.__module__.startswith('srdiff_basicsr.'):  # our archs: every integer option is a size or count
        for key, value in arch_opt.items():
            default = params[key].default if key in params else None
            if isinstance(default, bool):
                require(value, lambda v: isinstance(v, bool), f'{section}.{key}', 'true or false')
            elif is_int(default):
                require(value, lambda v: is_int(v) and v >= 1, f'{section}.{key}', 'an integer >= 1')
            elif isinstance(default, (list, tuple)) and not key.endswith(('_levels', '_blocks')):  # sizes: dim_mults
                require(value, lambda v: isinstance(v, (list, tuple)) and v and all(is_int(m) and m >= 1 for m in v),
                        f'{section}.{key}', 'a non-empty list of integers >= 1')
            elif isinstance(default, (list, tuple)):  # indices: window_attn_levels, feature_blocks
                require(value, lambda v: isinstance(v, (list, tuple)) and all(is_int(m) and m >= 0 for m in v),
                        f'{section}.{key}', 'a list of integers >= 0')
        try:  # the constructor's own checks (sizes that do not fit together), on the meta device: no memory used
            meta_network(arch_opt)
        except OptionsError as error:
            raise OptionsError(f'{section}: {error}') from None


def build_arch(arch_opt):
    """The network of a checked ``network_*`` section of ours."""
    arch_opt = dict(arch_opt)
    return ARCHS[arch_opt.pop('type')](**arch_opt)
