"""Configs by name: ``vmt/vmt_swin-t_pascal-mt`` from any directory (like mim's ``mmseg::``).

A name is a config's path under the config zoo without ``.py`` (an optional ``mtdense::``
prefix is accepted). The zoo is the package's own copy (``mtdense/.mim/configs``, written
into wheels by setup.py) or, in a source checkout / editable install, ``configs/`` beside
the package. A path to an existing file is always taken as it is.
"""
from __future__ import annotations

import difflib
import os
import os.path as osp
from typing import List, Optional

__all__ = ['configs_root', 'resolve_config', 'list_configs']

PREFIX = 'mtdense::'


def configs_root() -> Optional[str]:
    """The config zoo's folder: the installed package data, else the checkout's."""
    pkg = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.join(pkg, '.mim', 'configs'), osp.join(osp.dirname(pkg), 'configs')):
        if osp.isdir(root):
            return root
    return None


def list_configs() -> List[str]:
    """Every config name of the zoo (experiments and the demo/test configs, not ``_base_``)."""
    root = configs_root()
    if root is None:
        return []
    names = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != '_base_')
        for f in sorted(files):
            if f.endswith('.py'):
                rel = osp.relpath(osp.join(dirpath, f), root)
                names.append(rel[:-3].replace(os.sep, '/'))
    return sorted(names)


def resolve_config(name_or_path: str) -> str:
    """The file of ``name_or_path``: an existing path, or a config name of the zoo."""
    if osp.isfile(name_or_path):
        return name_or_path
    name = name_or_path[len(PREFIX):] if name_or_path.startswith(PREFIX) else name_or_path
    name = name[:-3] if name.endswith('.py') else name
    root = configs_root()
    if root is not None:
        for candidate in (name, name[len('configs/'):] if name.startswith('configs/') else None):
            if candidate and osp.isfile(osp.join(root, candidate + '.py')):
                return osp.join(root, candidate + '.py')
    close = difflib.get_close_matches(name, list_configs(), n=3, cutoff=0.5)
    raise FileNotFoundError(
        f'config {name_or_path!r} is neither a file nor a config name'
        + (f' (did you mean {", ".join(close)}?)' if close else '')
        + (f'; names are paths under {root} without .py, e.g. vmt/vmt_swin-t_pascal-mt'
           if root else '; no config zoo is installed with this mtdense'))
