"""What the import hook (srdiff_basicsr_hook.pth) costs every Python start, when basicsr is not used.

Runs ``python -X importtime -c pass`` repeatedly and reports the median import time of the hook
module against the median of the whole ``site`` start-up (which processes every .pth file), and
checks that neither torch nor basicsr is imported. Bytecode caching is left on (as for users: pip
compiles installed modules), so the first run writes the hook's .pyc and the others read it.

    python scripts/benchmark_hook.py --runs 30
"""
import argparse
import os
import re
import statistics
import subprocess
import sys


def one_run():
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONDONTWRITEBYTECODE'}
    result = subprocess.run([sys.executable, '-X', 'importtime', '-c', 'import sys; print(sorted(sys.modules))'],
                            capture_output=True, text=True, check=True, env=env)
    times = {}
    for line in result.stderr.splitlines():
        match = re.match(r'import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)', line)
        if match:
            times[match.group(4)] = int(match.group(2))  # cumulative microseconds
    modules = result.stdout
    return times.get('srdiff_basicsr_hook'), times.get('site'), "'torch'" in modules or "'basicsr'" in modules


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', type=int, default=30)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    if any(hook is None for hook, _, _ in runs):
        sys.exit('the hook is not installed in this interpreter (pip install the package first)')
    hook_us = statistics.median(h for h, _, _ in runs)
    site_us = statistics.median(s for _, s, _ in runs)
    heavy = any(h for _, _, h in runs)
    print(f'hook import: {hook_us:.0f} us (median of {args.runs}); all of site start-up: {site_us:.0f} us; '
          f'share {100 * hook_us / site_us:.1f} %; torch or basicsr imported at start: {heavy}')


if __name__ == '__main__':
    main()
