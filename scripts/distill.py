"""Progressive distillation, stage by stage, through BasicSR's training loop.

    python scripts/distill.py -opt options/demo_distill_x4.yml [--steps 32 16 8 4 2 1]

Stage 1 distils the ``teacher`` of the options file's ``train.objective`` into a student of ``--steps[0]`` DDIM steps; each
following stage takes the previous stage's student as its teacher (and starting weights) and halves the steps.
Every stage is ``python -m srdiff_basicsr.train -opt experiments/distill_stages/<name>_s<steps>.yml``, the options
file with its name and its objective's ``steps`` and ``teacher`` set (BasicSR copies it into the stage's experiment
folder, so the folder says its step count): its own experiment folder, log and checkpoints. A stage whose folder
already has its final weights is skipped, so an interrupted chain reruns from where it stopped (each stage
itself resumes with --auto_resume). Prints the teacher evaluations and wall time of each stage.
"""
import argparse
import os
import subprocess
import sys
import time
from os import path as osp

import yaml


def same_options(stage_file, stage):
    """Whether the stage file written for an earlier run holds these stage options."""
    if not osp.isfile(stage_file):
        return False
    with open(stage_file) as f:
        return yaml.safe_load(f) == stage


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='options of the first stage (train.objective: {type: distillation, ...})')
    parser.add_argument('--steps', type=int, nargs='+', default=[32, 16, 8, 4, 2, 1])
    args = parser.parse_args()
    with open(args.opt) as f:
        opt = yaml.safe_load(f)
    objective = (opt.get('train') or {}).get('objective') or {}
    if objective.get('type') != 'distillation':
        sys.exit(f'{args.opt}: not a distillation options file (train.objective: {{type: distillation, teacher, steps}})')
    if any(a != 2 * b for a, b in zip(args.steps, args.steps[1:])):
        sys.exit(f'--steps {args.steps}: each stage must halve the previous one')
    teacher, batch = objective['teacher'], opt['datasets']['train']['batch_size_per_gpu']
    for steps in args.steps:
        name = f"{opt['name']}_s{steps}"
        folder = osp.join('experiments', name)
        iterations = opt['train']['total_iter']
        stage = {**opt, 'name': name,
                 'train': {**opt['train'], 'objective': {**objective, 'steps': steps, 'teacher': teacher}}}
        stage_file = osp.join('experiments', 'distill_stages', f'{name}.yml')
        if osp.isdir(folder) and not same_options(stage_file, stage):
            sys.exit(f'{folder} exists but was not distilled with these options ({stage_file}); rename it (or the '
                     f'options\' name) rather than mixing two runs')
        if osp.isfile(osp.join(folder, 'models', 'net_g_latest.pth')):
            print(f'=== {name}: done before, skipped', flush=True)
        else:
            os.makedirs(osp.dirname(stage_file), exist_ok=True)
            with open(stage_file, 'w') as f:
                yaml.safe_dump(stage, f, sort_keys=False)
            command = [sys.executable, '-m', 'srdiff_basicsr.train', '-opt', stage_file]
            if osp.isdir(folder):
                command.append('--auto_resume')
            start = time.perf_counter()
            if subprocess.run(command).returncode:
                sys.exit(f'stage {name} failed; see the messages above (rerun to resume it)')
            print(f'=== {name}: {2 * steps}-step teacher -> {steps}-step student, {iterations:,} iterations x batch '
                  f'{batch}: {2 * iterations * batch:,} teacher evaluations (one per sample and teacher step), '
                  f'{time.perf_counter() - start:.0f} s', flush=True)
        teacher = folder


if __name__ == '__main__':
    main()
