"""A comparison's report: written to <folder>/report.md and printed."""
from os import path as osp

from basicsr.utils import mkdir_and_rename


def write_report(folder, lines):
    """``lines`` to ``folder``/report.md (an earlier folder of that name is archived, not overwritten, as BasicSR
    archives experiments) and to the terminal."""
    mkdir_and_rename(folder)
    with open(osp.join(folder, 'report.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
