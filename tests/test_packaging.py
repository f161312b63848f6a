"""`pip install .` ships the import hook into site-packages (editable installs are what the suite runs on)."""
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_puts_the_hook_pth_at_site_packages_root(tmp_path):
    source = tmp_path / 'source'  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns('.*', '__pycache__', 'build', '*.egg-info',
                                                                'experiments', 'results', 'datasets', 'tb_logger'))
    result = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                             str(tmp_path), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    wheel = zipfile.ZipFile(next(tmp_path.glob('srdiff_basicsr-*.whl')))
    names = set(wheel.namelist())
    assert {'srdiff_basicsr_hook.pth', 'srdiff_basicsr_hook.py', 'srdiff_basicsr/compat.py'} <= names
    assert wheel.read('srdiff_basicsr_hook.pth').decode().strip() == \
        'import srdiff_basicsr_hook; srdiff_basicsr_hook.install()'
    record = next(n for n in names if n.endswith('RECORD'))
    assert 'srdiff_basicsr_hook.pth,' in wheel.read(record).decode()  # so pip uninstall removes it
    entry_points = wheel.read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    assert 'srdiff-train = srdiff_basicsr.train:main' in entry_points
