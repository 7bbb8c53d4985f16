"""tools/make_synthetic.py: argument checks (``mtdense.cli.make_synthetic`` in-process) and
the script end to end (the renderer and writer: tests/datasets/test_synthetic_renderer.py)."""
import json
import os
import subprocess
import sys

import pytest

from helpers.toolrun import ROOT
from mtdense.cli import make_synthetic as tool

TOOL = os.path.join(ROOT, 'tools', 'make_synthetic.py')


@pytest.mark.parametrize('argv, message', [
    (['--num', '0'], '--num must be > 0'),
    (['--num', '3', '--size', '8', '64'], '--size H W must both be >= 16'),
    (['--num', '3', '--seed', '-2'], '--seed must be >= 0'),
    (['--num', '3', '--val-fraction', '1.5'], '--val-fraction must be in [0, 1)'),
    (['--num', '3', '--workers', '0'], '--workers must be >= 1'),
])
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        tool.main(argv + ['--out', str(tmp_path / 'x')])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_cli_end_to_end(tmp_path):
    out = tmp_path / 'data'
    cmd = [sys.executable, TOOL, '--num', '3', '--size', '32', '40', '--seed', '7', '--out',
           str(out), '--val-fraction', '0.34', '--quiet']
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 'images/s' in res.stdout
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['num_samples'] == 3 and meta['size'] == [32, 40] and meta['seed'] == 7
    assert sorted(os.listdir(out / 'images')) == ['000000.png', '000001.png', '000002.png']
    assert (out / 'gt_sets' / 'val.txt').read_text().split() == ['000002']
    # a second run with other settings refuses to touch the directory
    res = subprocess.run(cmd[:-1] + ['--seed', '8'], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 1 and 'different settings' in res.stderr
