"""The package's structure: imports go one way between subpackages, files do one job.

The import graph has one node per package (a module counts as part of the package that
contains it, a package's ``__init__`` is the package) and an edge A -> B when a module of
A imports anything of B, at module level or inside a function (a deferred import is still
a dependency). A package and its subpackages are nodes like any other: ``engine/__init__``
importing ``engine.hooks`` while a hook imports a module of ``engine`` is a cycle. A cycle
means two packages cannot be understood, tested or reused apart.
"""
import ast
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mtdense'
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def _package_of(path: Path) -> str:
    return '.'.join(path.parent.relative_to(ROOT).parts)


def _imports(path: Path) -> Set[str]:
    """Absolute names of everything the module imports, at module level or in a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = _package_of(path)
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split('.')
                mod = '.'.join(parts[:len(parts) - node.level + 1] + [node.module or ''])
            else:
                mod = node.module or ''
            # `from pkg import sub` imports the submodule: resolved in import_graph()
            names.update(f'{mod.rstrip(".")}.{alias.name}' for alias in node.names)
    return names


def import_graph() -> Dict[str, Set[str]]:
    """``{package: packages it imports}`` over mtdense/."""
    files = sorted(PACKAGE.rglob('*.py'))
    modules = {_module_name(p): p for p in files}
    owner = {name: (name if p.name == '__init__.py' else _package_of(p))
             for name, p in modules.items()}
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        src = owner[name]
        graph.setdefault(src, set())
        for imported in _imports(path):
            target = imported
            while target and target not in modules:  # `from pkg import name`: the module
                target = target.rpartition('.')[0]
            if target and owner[target] != src:
                graph[src].add(owner[target])
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert find_cycles({'a': {'b'}, 'b': set()}) == []


def test_import_graph_sees_the_packages():
    graph = import_graph()
    assert 'mtdense.models' in graph and 'mtdense.datasets' in graph
    assert 'mtdense.tasks' in graph['mtdense.datasets.transforms']


def test_no_import_cycle_between_packages():
    graph = import_graph()
    cycles = find_cycles(graph)
    detail = []
    for comp in cycles:
        edges = [f'{a} -> {b}' for a in comp for b in sorted(graph[a]) if b in comp]
        detail.append('; '.join(edges))
    assert not cycles, 'import cycles between packages:\n' + '\n'.join(detail)


def test_no_source_file_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob('*.py')
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f'files over {MAX_LINES} lines: {long}'


def test_no_environment_or_symlink_is_tracked():
    """A clone carries no virtual environment and no symlink (one pointing at a developer's
    venv would stand in for the real .venv of a fresh clone and break its setup)."""
    if not (ROOT / '.git').exists() or shutil.which('git') is None:
        pytest.skip('not a git checkout')
    out = subprocess.run(['git', 'ls-files', '-s'], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    links = [line.split('\t', 1)[1] for line in out if line.startswith('120000 ')]
    assert not links, f'tracked symlinks: {links}'
    envs = [line.split('\t', 1)[1] for line in out
            if line.split('\t', 1)[1].split('/')[0] in ('.venv', 'venv', 'work_dirs')]
    assert not envs, f'tracked environment / work files: {envs[:5]}'
    ignored = subprocess.run(['git', 'check-ignore', '-q', '--no-index', '.venv'], cwd=ROOT)
    assert ignored.returncode == 0, '.gitignore must ignore .venv (a directory or a symlink)'
