"""tools/demo_report.py: per-task table and Δm against the baseline run, hand-computed."""
import json
import os.path as osp
import subprocess
import sys

from mtdense.evaluation import load_baselines

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'demo_report.py')


def _metrics(path, **values):
    with open(path, 'w') as f:
        json.dump(dict(config='c.py', checkpoint='x.pth',
                       metrics={k.replace('__', '/'): v for k, v in values.items()}), f)
    return str(path)


def test_table_and_delta_m(tmp_path):
    base = _metrics(tmp_path / 'base.json', semseg__mIoU=50.0, semseg__pixAcc=90.0,
                    normals__mErr=20.0, depth__rmse=0.5)
    # semseg +10 %, normals 10 % worse, depth unchanged -> Δm = (10 - 10 + 0) / 3 = 0
    even = _metrics(tmp_path / 'even.json', semseg__mIoU=55.0, normals__mErr=22.0, depth__rmse=0.5)
    # semseg +20 %, normals +10 % (lower error), depth +20 % (0.4 vs 0.5) -> Δm = 50 / 3
    better = _metrics(tmp_path / 'better.json', semseg__mIoU=60.0, normals__mErr=18.0,
                      depth__rmse=0.4)
    out, bl = tmp_path / 'report.md', tmp_path / 'baselines.json'
    res = subprocess.run([sys.executable, TOOL, '--baseline', f'stft={base}', '--run', f'even={even}',
                          '--run', f'better={better}', '--params', 'better=1234',
                          '--baselines-out', str(bl), '--out', str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in out.read_text().splitlines()[2:]}
    # columns: semseg, human_parts, saliency, normals, depth, Δm, params
    assert rows['stft'][:6] == ['50.00', '–', '–', '20.00', '0.50', '+0.00']
    assert rows['even'][5] == '+0.00'
    assert rows['better'][5] == '+16.67' and rows['better'][6] == '1234'
    assert res.stdout.strip() == out.read_text().strip()
    # the baseline run is written as a baselines JSON the metric can load
    loaded = load_baselines(str(bl))
    assert loaded.metrics['semseg']['mIoU'] == 50.0 and loaded.metrics['depth']['rmse'] == 0.5


def test_missing_metrics_file_is_named(tmp_path):
    res = subprocess.run([sys.executable, TOOL, '--baseline', f'b={tmp_path / "none.json"}'],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and 'none.json' in res.stderr
