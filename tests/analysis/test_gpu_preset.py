"""benchmarks/gpu_preset.sh on a machine without a GPU: the dry run checks the plan and says
that CUDA is absent; a real run refuses before measuring anything."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtdense.analysis.gpu_preset import main, plan_runs

REPO = Path(__file__).resolve().parents[2]


def test_plan_covers_batch_1_and_32_fp32_and_bf16():
    runs = plan_runs('cuda', [448], [1, 32], ['fp32', 'bf16'], [1, 2, 4, 8, 16],
                     ['infer', 'train'], 5, 20, None)
    assert [r['name'] for r in runs] == ['both_448_b1_fp32', 'both_448_b1_bf16',
                                         'both_448_b32_fp32', 'both_448_b32_bf16']
    for r in runs:
        s = r['settings']
        assert s['device'] == 'cuda' and s['schedule'] == 'interleaved'
        assert s['bf16'] == r['name'].endswith('bf16')
        assert len(s['configs']) == 6 and s['num_tasks'] == [1, 2, 4, 8, 16]
    assert [r['settings']['flops'] for r in runs] == [True, False, False, False]


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the machine without CUDA')
def test_dry_run_without_cuda_writes_the_plan_and_says_so(tmp_path, capsys):
    assert main(['--dry-run', '--out', str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert 'CUDA is not available' in err and '[dry run] both_448_b32_bf16' in err
    plan = json.loads((tmp_path / 'plan.json').read_text())
    assert plan['dry_run'] and not plan['cuda_available'] and len(plan['runs']) == 4
    machine = json.loads((tmp_path / 'machine.json').read_text())
    assert machine['cuda_available'] is False and 'cpu_model' in machine
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing measured


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the machine without CUDA')
def test_the_script_refuses_to_run_without_cuda(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(['bash', str(REPO / 'benchmarks/gpu_preset.sh'), '--quick', '--out',
                           str(tmp_path)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert 'CUDA is not available' in proc.stderr and 'nothing measured' in proc.stderr
    proc = subprocess.run(['bash', str(REPO / 'benchmarks/gpu_preset.sh'), '--dry-run', '--quick',
                           '--batches', '1', '--out', str(tmp_path)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / 'plan.json').read_text())['runs'][0]['settings'][
        'num_tasks'] == [1, 4, 16]
