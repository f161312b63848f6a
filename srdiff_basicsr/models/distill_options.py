"""The ``distillation`` objective's options (``train.objective: {type: distillation, teacher, steps}``): the teacher
found and read, the student's sections checked against the teacher's, its starting weights filled in."""
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.errors import OptionsError, WeightsError, is_int, require
from srdiff_basicsr.model_files import network_files, read_model_options, resolve_model_files
from srdiff_basicsr.network_options import complete_network_options, diffusion_options

WHERE = 'train.objective'


def _network_sections(opt):
    space = diffusion_options(opt.get('diffusion'))['space']
    return ('network_g', 'network_encoder', *SPACES[space].networks)


def complete_distillation(opt, section):
    """Check ``teacher`` (an experiment folder, converted checkpoint or ``net_g`` file) and ``steps`` (the student's
    DDIM steps) and the student's sections against the teacher's; fill in the student's starting weights (the
    teacher's, EMA when saved, for every network of its space) and its validation sampler (DDIM with ``steps``)."""
    require(section.get('teacher'), lambda v: isinstance(v, str), f'{WHERE}.teacher',
            "the teacher's experiment folder, converted checkpoint folder or net_g file")
    unknown = sorted(set(section) - {'type', 'teacher', 'steps'})
    if unknown:
        raise OptionsError(f'{WHERE}: unknown option(s) {unknown} of distillation; known: [steps, teacher]')
    try:
        unet_weights, encoder_weights, options_file = resolve_model_files(section['teacher'])
        teacher = read_model_options(options_file)
        teacher_diffusion = diffusion_options(teacher.get('diffusion'))
        sections = _network_sections(teacher)
        teacher_networks = complete_network_options({key: teacher.get(key) for key in
                                                     ('scale', 'diffusion', *sections)})
        space_weights = network_files(unet_weights, SPACES[teacher_diffusion['space']].networks)
    except (OSError, WeightsError, OptionsError) as error:
        raise OptionsError(f'{WHERE}.teacher: {error}') from None
    num_timesteps = teacher_diffusion['timesteps']
    require(section.get('steps'), lambda v: is_int(v) and 1 <= v and 2 * v <= num_timesteps, f'{WHERE}.steps',
            f'an integer from 1 to {num_timesteps // 2} (the teacher is sampled with twice as many)')
    for key in sections:
        if key not in opt:
            raise OptionsError(f"{key}: missing; a student has the teacher's networks: copy {key} of {options_file}")
    student = complete_network_options({key: opt.get(key) for key in ('scale', 'diffusion', *sections)})
    differ = [f'{name}.{key}' for name in sections for key in set(student[name]) | set(teacher_networks[name])
              if student[name].get(key) != teacher_networks[name].get(key)]
    student_diffusion = diffusion_options(opt.get('diffusion'))
    # the student may change parametrization (Salimans & Ho: eps fails in few steps), not its number of heads
    differ += [f'diffusion.{key}' for key, value in student_diffusion.items()
               if key != 'parametrization' and teacher_diffusion.get(key) != value]
    if (len(PARAMETRIZATIONS[student_diffusion['parametrization']].heads)
            != len(PARAMETRIZATIONS[teacher_diffusion['parametrization']].heads)):
        differ.append('diffusion.parametrization (its number of output heads)')
    if opt.get('scale') != teacher_networks['scale']:
        differ.append('scale')
    if differ:
        raise OptionsError(f"{WHERE}.teacher: the student must have the teacher's networks and diffusion; these "
                           f'differ from {options_file}: {", ".join(sorted(differ))}')
    path = opt.setdefault('path', {})
    if path.get('pretrain_network_g') is None:
        path['pretrain_network_g'] = unet_weights
        path.setdefault('param_key_g', 'params_ema')  # the teacher's EMA weights when saved, else params
    starts = {'pretrain_network_encoder': encoder_weights,
              **{f'pretrain_network_{s[len("network_"):]}': f for s, f in space_weights.items()}}
    for key, weights in starts.items():
        if path.get(key) is None:
            path[key] = weights
    if opt.get('val') is not None:
        opt['val'].setdefault('sampler', {'type': 'ddim', 'steps': section['steps']})
    if 'optim_encoder' in (opt.get('train') or {}):
        raise OptionsError("train.optim_encoder: a student shares the teacher's frozen encoder")
