"""The option sections that define an SRDiff (``scale``, ``network_g``, ``network_encoder``, ``diffusion``),
checked and completed before anything is built, errors naming the option.

Shared by the BasicSR model (options files) and the sampling pipeline (experiment folders, converted
checkpoints), so both read a model the same way.
"""
from srdiff_basicsr.archs.arch_options import check_arch_options
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.schedule import SCHEDULES
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.errors import OptionsError, is_int
from srdiff_basicsr.option_spec import Option, checked_options, must_be

# the section's own options; then its schedule's (SCHEDULES: timesteps and its options) and its space's (SPACES)
DIFFUSION_OPTIONS = {
    'space': Option('pixel_residual', 'the space the diffusion runs in (`diffusion/spaces.py`)',
                    must_be(lambda v: v in SPACES, f'one of {sorted(SPACES)}')),
    'schedule': Option('cosine', 'the noise schedule (`diffusion/schedule.py`)',
                       must_be(lambda v: v in SCHEDULES, f'one of {sorted(SCHEDULES)}')),
    'parametrization': Option('eps', 'what network_g predicts (`diffusion/parametrization.py`)',
                              must_be(lambda v: v in PARAMETRIZATIONS, f'one of {sorted(PARAMETRIZATIONS)}')),
}


def timesteps_option(schedule):
    return Option(SCHEDULES[schedule].timesteps, 'the number of steps T',
                  must_be(lambda v: is_int(v) and v >= 1, 'an integer >= 1'))


def diffusion_options(section):
    """The ``diffusion`` section with its defaults (and those of its space and schedule) filled in, checked."""
    section = dict(section or {})
    if 'loss' in section:
        loss = {'l1': 'L1Loss', 'l2': 'MSELoss'}.get(section['loss'], 'L1Loss')
        raise OptionsError(f"diffusion.loss: the noise loss now comes from BasicSR's loss registry; remove "
                           f"diffusion.loss and write train.pixel_opt: {{type: {loss}, loss_weight: 1.0}} instead")
    own = checked_options(DIFFUSION_OPTIONS, {k: v for k, v in section.items() if k in DIFFUSION_OPTIONS},
                          'diffusion', 'diffusion')
    space, schedule = own['space'], own['schedule']
    spec = {**DIFFUSION_OPTIONS, 'timesteps': timesteps_option(schedule), **SPACES[space].options,
            **SCHEDULES[schedule].options}
    return checked_options(spec, section, 'diffusion', f'space {space} and schedule {schedule}')


def network_label(section):
    """``network_vae`` -> ``vae``: the <x> of BasicSR's ``net_<x>`` files and ``pretrain_network_<x>`` /
    ``param_key_<x>`` options for a ``network_<x>`` section."""
    return section.removeprefix('network_')


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


