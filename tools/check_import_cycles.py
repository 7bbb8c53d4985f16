"""Report import cycles between the subpackages of mtdense (static, from ``ast``).

A node is the package that contains a module (``mtdense/models/adapters/lora.py``
-> ``mtdense.models.adapters``; a package's ``__init__`` belongs to the package
itself). Every ``import`` / ``from ... import`` of an mtdense module, at module
level or inside a function, is an edge. Edges from a package to its own parent
(and vice versa) through ``__init__`` re-exports are ignored, and so are imports
of the top-level ``mtdense`` package (its ``__init__`` only installs a stand-in).

Usage: ``python tools/check_import_cycles.py [--strict] [ROOT]``; exit status 1 on a
cycle. ``--strict`` also counts edges between a package and its own subpackages.
"""
import ast
import os
import sys
from collections import defaultdict


def module_name(root: str, path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(root))[:-3].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def package_of(root: str, name: str) -> str:
    """The package a module belongs to (a package is its own)."""
    path = os.path.join(os.path.dirname(root), *name.split('.'))
    return name if os.path.isdir(path) else name.rpartition('.')[0]


def imports(path: str, name: str, is_pkg: bool):
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    base = name if is_pkg else name.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split('.')
                mod = '.'.join(parts[:len(parts) - node.level + 1])
                mod = f'{mod}.{node.module}' if node.module else mod
            else:
                mod = node.module or ''
            yield mod
            for a in node.names:  # ``from pkg import submodule``
                yield f'{mod}.{a.name}'


def graph(root: str, strict: bool = False):
    edges = defaultdict(set)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith('.py'):
                continue
            path = os.path.join(dirpath, f)
            name = module_name(root, path)
            src = package_of(root, name)
            for mod in imports(path, name, f == '__init__.py'):
                if not mod.startswith('mtdense.'):
                    continue
                # keep only names that are modules/packages of mtdense
                parts = mod.split('.')
                while parts and not (os.path.isdir(os.path.join(os.path.dirname(root), *parts))
                                     or os.path.isfile(os.path.join(os.path.dirname(root),
                                                                    *parts) + '.py')):
                    parts.pop()
                if len(parts) < 2:
                    continue
                dst = package_of(root, '.'.join(parts))
                if dst == src or dst == 'mtdense':
                    continue
                if not strict and (src.startswith(dst + '.') or dst.startswith(src + '.')):
                    continue  # a package and its own subpackage (re-exports)
                edges[src].add(dst)
    return edges


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    args = [a for a in sys.argv[1:] if a != '--strict']
    root = args[0] if args else os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'mtdense')
    edges = graph(os.path.abspath(root), strict='--strict' in sys.argv[1:])
    found = cycles(edges)
    for comp in found:
        print('cycle among:', ', '.join(comp))
        for v in comp:
            inner = sorted(w for w in edges[v] if w in comp)
            print(f'  {v} -> {", ".join(inner)}')
    if not found:
        print(f'no import cycle among {len(edges)} mtdense subpackages')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
