"""tools/<name>.py are thin wrappers of mtdense/cli/<name>.py, and each runs as a program.

The tool tests call ``main(argv)`` of the mtdense.cli module in-process; train, test,
infer, check_dataset, demo_report and make_synthetic are also run as scripts by their own
tests (helpers.toolrun.run_tool or subprocess). The others run here, as programs started
outside the checkout.
"""
import ast
import subprocess

import pytest

from helpers import ROOT
from helpers.toolrun import PYTHON, tool_env
from mtdense.cli import COMMANDS

#: mtdense.cli modules of the ``mtdense`` subcommands: each has a tools/ wrapper
CLI_MODULES = sorted(module for module, _ in COMMANDS.values() if module)
#: the wrappers no other test starts as a program
NOT_RUN_ELSEWHERE = ['analyze_params', 'benchmark_methods', 'browse_dataset',
                     'convert_mobilenetv2', 'export_peft', 'extract_backbone', 'make_baselines']


@pytest.mark.parametrize('name', CLI_MODULES)
def test_wrapper_is_thin(name):
    """tools/<name>.py imports ``main`` from mtdense.cli.<name> and defines nothing itself."""
    tree = ast.parse((ROOT / 'tools' / f'{name}.py').read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert (f'mtdense.cli.{name}', 'main') in imported
    assert not [node for node in tree.body
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]


@pytest.mark.parametrize('name', NOT_RUN_ELSEWHERE)
def test_wrapper_runs_as_a_program(name, tmp_path):
    proc = subprocess.run([PYTHON, str(ROOT / 'tools' / f'{name}.py'), '--help'], cwd=tmp_path,
                          env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.startswith(f'usage: {name}.py'), proc.stdout[:500]
