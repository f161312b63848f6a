"""Shared start-up of the train/test entry points: BasicSR's pipelines with outputs under the cwd, the
options checked right after BasicSR parses them (before it creates folders, datasets or the model), and a
user error in one line, not a traceback."""
import functools
import os
import re
import sys
from os import path as osp

import yaml

from srdiff_basicsr.errors import USER_ERRORS, OptionsError
from srdiff_basicsr.host.experiment_lock import running_pid
from srdiff_basicsr.models.run_checks import check_run_options


def run_pipeline(pipeline):
    """Run ``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline`` with root_path = cwd."""
    module = sys.modules[pipeline.__module__]
    parse_options = module.parse_options
    module.parse_options = functools.partial(parse_and_check, parse_options)  # only for this run of our entry
    try:
        pipeline(os.getcwd())
    except USER_ERRORS as error:
        print(f'error: {one_line(error)}', file=sys.stderr)
        sys.exit(2)
    finally:
        module.parse_options = parse_options


def parse_and_check(parse_options, *args, **kwargs):
    """BasicSR's ``parse_options`` with the command line and the options checked (``check_run_options``)."""
    check_command_line(sys.argv[1:])
    try:
        opt, parsed_args = parse_options(*args, **kwargs)
    except yaml.YAMLError as error:
        raise OptionsError(f'-opt: not a valid YAML options file ({" ".join(str(error).split())})') from None
    check_run_options(opt)
    root = opt['path'].get('experiments_root') if opt.get('is_train') and opt.get('rank', 0) == 0 else None
    pid = running_pid(root) if root else None
    if pid is not None:
        raise OptionsError(f'name: {opt["name"]}: experiments/{opt["name"]} belongs to a training that is running '
                           f'(process {pid}); wait for it to end, or choose another name')
    return opt, parsed_args


def parse_and_check_for_stock_script(parse_options, *args, **kwargs):
    """``parse_and_check`` for BasicSR's own scripts (``python -m basicsr.train``, ``basicsr/test.py``): an
    options mistake ends in one ``error:`` line with exit status 2, as with our entry points; one found later
    (a broken image, a diverged run) in one ``error:`` line with Python's exit status 1."""
    try:
        result = parse_and_check(parse_options, *args, **kwargs)
    except USER_ERRORS as error:
        print(f'error: {one_line(error)}', file=sys.stderr)
        sys.exit(2)
    previous_hook = sys.excepthook

    def excepthook(kind, error, traceback):
        if isinstance(error, USER_ERRORS):
            print(f'error: {one_line(error)}', file=sys.stderr)
        else:
            previous_hook(kind, error, traceback)

    sys.excepthook = excepthook
    return result


def one_line(error):
    """The error's message; for one raised in a DataLoader worker, which torch re-raises with the worker's
    traceback in front of it, the message itself (the traceback's last line)."""
    text = str(error)
    if 'Original Traceback' not in text:
        return text
    last = text.strip().splitlines()[-1]
    return last.split(': ', 1)[1] if ': ' in last else last


def check_command_line(argv):
    """What BasicSR's ``parse_options`` would fail on deep inside, or run: ``-opt`` that is not a file; a
    ``--force_yml`` entry without '=' (a bare ValueError) or whose keys are not plain names (BasicSR pastes
    them into code it ``exec``s)."""
    if '-opt' in argv[:-1] and osp.isdir(argv[argv.index('-opt') + 1]):
        raise OptionsError(f'-opt {argv[argv.index("-opt") + 1]}: is a folder; give the options file (.yml)')
    if '--force_yml' not in argv:
        return
    for entry in argv[argv.index('--force_yml') + 1:]:
        if entry.startswith('-'):
            break
        if '=' not in entry:
            raise OptionsError(f'--force_yml {entry}: expected key:subkey=value, e.g. train:total_iter=1000')
        keys = entry.split('=', 1)[0].strip()
        if not re.fullmatch(r'[\w.-]+(:[\w.-]+)*', keys):
            raise OptionsError(f'--force_yml {entry}: the keys must be option names separated by ":"')
