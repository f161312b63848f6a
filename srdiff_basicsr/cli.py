"""Shared start-up of the train/test entry points: BasicSR's pipelines with outputs under the cwd."""
import os
import sys

from srdiff_basicsr.errors import USER_ERRORS


def run_pipeline(pipeline):
    """Run a BasicSR pipeline with root_path = cwd; a user error ends in one line, not a traceback."""
    try:
        pipeline(os.getcwd())
    except USER_ERRORS as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
