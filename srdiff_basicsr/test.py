"""``python -m srdiff_basicsr.test -opt X.yml``: BasicSR's test pipeline with SRDiff registered.

Writes ``results/<name>/`` (log, ``visualization/<dataset>/`` images) under the current directory.
"""
import srdiff_basicsr.plugin  # noqa: F401  (registration)
from basicsr.test import test_pipeline

from srdiff_basicsr.host.cli import run_pipeline


def main():
    run_pipeline(test_pipeline)


if __name__ == '__main__':
    main()
