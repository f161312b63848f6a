"""``python -m srdiff_basicsr.train -opt X.yml``: BasicSR's training pipeline with SRDiff registered.

Takes BasicSR's command line (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``) and
writes ``experiments/``, ``tb_logger/`` under the current directory.
"""
import srdiff_basicsr.plugin  # noqa: F401  (registration)
from basicsr.train import train_pipeline

from srdiff_basicsr.host.cli import run_pipeline


def main():
    run_pipeline(train_pipeline)


if __name__ == '__main__':
    main()
