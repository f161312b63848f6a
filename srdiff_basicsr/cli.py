"""Shared start-up of the train/test entry points: BasicSR's pipelines with outputs under the cwd, the
options checked right after BasicSR parses them (before it creates folders, datasets or the model), and a
user error in one line, not a traceback."""
import os
import sys

import yaml

from srdiff_basicsr.errors import USER_ERRORS, OptionsError
from srdiff_basicsr.models.options import check_run_options


def run_pipeline(pipeline):
    """Run ``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline`` with root_path = cwd."""
    module = sys.modules[pipeline.__module__]
    parse_options = module.parse_options

    def parse_and_check(*args, **kwargs):
        check_force_yml(sys.argv[1:])
        try:
            opt, parsed_args = parse_options(*args, **kwargs)
        except yaml.YAMLError as error:
            raise OptionsError(f'-opt: not a valid YAML options file ({" ".join(str(error).split())})') from None
        check_run_options(opt)
        return opt, parsed_args

    module.parse_options = parse_and_check  # only for this run of our entry point
    try:
        pipeline(os.getcwd())
    except USER_ERRORS as error:
        print(f'error: {one_line(error)}', file=sys.stderr)
        sys.exit(2)
    finally:
        module.parse_options = parse_options


def one_line(error):
    """The error's message; for one raised in a DataLoader worker, which torch re-raises with the worker's
    traceback in front of it, the message itself (the traceback's last line)."""
    text = str(error)
    if 'Original Traceback' not in text:
        return text
    last = text.strip().splitlines()[-1]
    return last.split(': ', 1)[1] if ': ' in last else last


def check_force_yml(argv):
    """BasicSR splits each ``--force_yml`` entry at '=' and fails with a bare ValueError when there is none."""
    if '--force_yml' not in argv:
        return
    for entry in argv[argv.index('--force_yml') + 1:]:
        if entry.startswith('-'):
            break
        if '=' not in entry:
            raise OptionsError(f'--force_yml {entry}: expected key:subkey=value, e.g. train:total_iter=1000')
