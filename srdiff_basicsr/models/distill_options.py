"""The ``distillation`` objective's options (``train.objective: {type: distillation, teacher, steps}``): the teacher
found and read, the student's sections checked against the teacher's, its starting weights filled in."""
from srdiff_basicsr.diffusion.parametrization import PARAMETRIZATIONS
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.errors import OptionsError, WeightsError, is_int, require
from srdiff_basicsr.loading.model_files import model_manifest
from srdiff_basicsr.network_options import complete_network_options, diffusion_options, network_label

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
        manifest = model_manifest(section['teacher'])
        teacher, options_file = manifest.options, manifest.source
        teacher_diffusion = diffusion_options(teacher.get('diffusion'))
        sections = _network_sections(teacher)
        teacher_networks = complete_network_options({key: teacher.get(key) for key in
                                                     ('scale', 'diffusion', *sections)})
        missing = [name for name in sections if name not in manifest.weights]
        if missing:
            raise WeightsError(f'{options_file}: no weights for {", ".join(missing)}')
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
    for name in sections:  # the teacher's weights (EMA when saved), unless given
        short = network_label(name)
        if path.get(f'pretrain_network_{short}') is None:
            path[f'pretrain_network_{short}'], key = manifest.weights[name]
            path.setdefault(f'param_key_{short}', key)
    if opt.get('val') is not None:
        opt['val'].setdefault('sampler', {'type': 'ddim', 'steps': section['steps']})
    if 'optim_encoder' in (opt.get('train') or {}):
        raise OptionsError("train.optim_encoder: a student shares the teacher's frozen encoder")
