"""The option sections that define an SRDiff (``scale``, ``network_g``, ``network_encoder``, ``diffusion``),
checked and completed before anything is built, errors naming the option.

Shared by the BasicSR model (options files) and the sampling pipeline (experiment folders, converted
checkpoints), so both read a model the same way.
"""
from srdiff_basicsr.archs.arch_options import check_arch_options
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.schedule import SCHEDULES
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.errors import OptionsError, is_int, is_number, require

# and the schedule's own (SCHEDULES: timesteps and its options) and the space's (SPACES: e.g. res_rescale, clip_x0,
# lr_up for the pixel residual; scale_factor, fidelity, lr_up, posterior for a VAE latent)
DIFFUSION_DEFAULTS = dict(space='pixel_residual', schedule='cosine', parametrization='eps')


def diffusion_options(section):
    """The ``diffusion`` section with its defaults (and those of its space and schedule) filled in."""
    section = dict(section or {})
    if 'loss' in section:
        loss = {'l1': 'L1Loss', 'l2': 'MSELoss'}.get(section['loss'], 'L1Loss')
        raise OptionsError(f"diffusion.loss: the noise loss now comes from BasicSR's loss registry; remove "
                           f"diffusion.loss and write train.pixel_opt: {{type: {loss}, loss_weight: 1.0}} instead")
    space, schedule = (section.get(key, DIFFUSION_DEFAULTS[key]) for key in ('space', 'schedule'))
    if space not in SPACES:
        raise OptionsError(f'diffusion.space: must be one of {sorted(SPACES)}, got {space!r}')
    if schedule not in SCHEDULES:
        raise OptionsError(f'diffusion.schedule: must be one of {sorted(SCHEDULES)}, got {schedule!r}')
    entry, space_entry = SCHEDULES[schedule], SPACES[space]
    defaults = {**DIFFUSION_DEFAULTS, **space_entry.options, 'timesteps': entry.timesteps, **entry.options}
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise OptionsError(f'diffusion: unknown option(s) {unknown} for space {space} and schedule {schedule}; '
                           f'known: {sorted(defaults)}')
    options = {**defaults, **section}
    if options['parametrization'] not in PARAMETRIZATIONS:
        raise OptionsError(f'diffusion.parametrization: must be one of {sorted(PARAMETRIZATIONS)}, '
                           f'got {options["parametrization"]!r}')
    require(options['timesteps'], lambda v: is_int(v) and v >= 1, 'diffusion.timesteps', 'an integer >= 1')
    for key in entry.options:
        require(options[key], lambda v: is_number(v) and v > 0, f'diffusion.{key}', 'a number > 0')
    for key, (valid, must) in space_entry.checks.items():
        require(options[key], valid, f'diffusion.{key}', must)
    return options


def space_options(diffusion):
    """The keyword arguments of the space's builder in a completed ``diffusion`` section."""
    return {key: diffusion[key] for key in SPACES[diffusion['space']].options}


def schedule_options(diffusion):
    """The keyword arguments of ``DiscreteSchedule.from_options`` in a completed ``diffusion`` section."""
    own = SCHEDULES[diffusion['schedule']].options
    return {'schedule': diffusion['schedule'], 'timesteps': diffusion['timesteps'],
            **{key: diffusion[key] for key in own}}


def complete_network_options(opt):
    """Check the network sections of ``opt`` (in place): ``network_g``, ``network_encoder`` and those of
    ``diffusion.space`` (``SPACES[...].networks``): registered types, known options; then the family's own checks
    and fill-ins (the space's ``complete_networks``)."""
    diffusion = diffusion_options(opt.get('diffusion'))
    sections = ('network_g', 'network_encoder', *SPACES[diffusion['space']].networks)
    for section in sections:
        if section not in opt:
            raise OptionsError(f'{section}: missing (diffusion.space {diffusion["space"]} needs {", ".join(sections)})')
        check_arch_options(section, opt[section])
    SPACES[diffusion['space']].complete_networks(opt, diffusion)
    return opt


