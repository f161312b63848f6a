"""srdiff-basicsr: SRDiff as a BasicSR plugin.

Besides the package, the install puts ``srdiff_basicsr_hook.pth`` into site-packages (as pytest-cov
does with its own .pth) so that BasicSR's stock train/test entry points find SRDiff's classes.
Regular installs get it through ``build_py``; editable installs (PEP 660) through ``editable_wheel``.
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
PTH = 'srdiff_basicsr_hook.pth'


class BuildPyWithHook(build_py):

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH))


class EditableWheelWithHook(editable_wheel):

    def _install_namespaces(self, installation_dir, pth_prefix):
        # everything in installation_dir goes into the editable wheel's root, i.e. site-packages
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copy(os.path.join(HERE, PTH), installation_dir)


def read_requirements():
    with open(os.path.join(HERE, 'requirements.txt')) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setup(
    name='srdiff-basicsr',
    version='0.1.0',
    description='SRDiff (diffusion super-resolution) as a plugin for the BasicSR toolbox',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['srdiff_basicsr', 'srdiff_basicsr.*']),
    py_modules=['srdiff_basicsr_hook'],
    install_requires=read_requirements(),
    entry_points={
        'console_scripts': [
            'srdiff-train = srdiff_basicsr.train:main',
            'srdiff-test = srdiff_basicsr.test:main',
            'srdiff-infer = srdiff_basicsr.infer:entry_point',
        ],
    },
    cmdclass={'build_py': BuildPyWithHook, 'editable_wheel': EditableWheelWithHook},
)
