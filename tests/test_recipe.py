"""The README's "Reproduce the paper" block runs verbatim (slow: a few minutes on 2 cores).

The block is taken from README.md and run with bash in a fresh project directory laid out
like a clone (``tools/`` and ``configs/`` of this checkout) where only what cannot exist
here is stood in for, by programs of the same name first on PATH:

* ``tar`` is the real one, extracting ``PASCAL_MT.tgz`` made here from a synthetic tree in
  the exact PASCAL_MT release layout (varied image sizes);
* ``wget`` copies a small Swin (embed 16, one block per stage) saved in the official
  Microsoft key layout, under the official file name;
* ``python`` is this interpreter with a tiny backbone matching that file and ``--iters 2``
  appended to the mtdense tools (the block's ``iter_46800`` become ``iter_2``);
* ``srun`` / ``scontrol`` start the slurm ranks as local processes; "GPUs" are CPU
  processes (gloo).
"""
import os
import re
import socket
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=7)
MODEL = ('model.backbone.backbone.embed_dims=16 model.backbone.backbone.depths=[1,1,1,1] '
         'model.backbone.backbone.num_heads=[1,1,1,1] model.heads.channels=8')
LOADERS = ' '.join(f'{s}_dataloader.num_workers=0 {s}_dataloader.persistent_workers=False'
                   for s in ('train', 'val', 'test'))


def readme_recipe() -> str:
    text = (ROOT / 'README.md').read_text()
    m = re.search(r'<!-- recipe:[^>]*-->\s*```bash\n(.*?)```', text, flags=re.S)
    assert m, 'README.md has no recipe block'
    return m.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _script(path: Path, body: str) -> None:
    path.write_text('#!/usr/bin/env bash\n' + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _official_tiny_swin(path: Path) -> None:
    """A tiny Swin's weights in the official layout (merges at the end of a stage)."""
    from mtdense.models.backbones import MMSegSwin
    from mtdense.models.backbones.checkpoint import swin_mmseg_to_official
    torch.manual_seed(0)
    host = MMSegSwin(**TINY)
    host.init_backbone_weights()
    torch.save({'model': swin_mmseg_to_official(host.backbone.state_dict())}, path)


@pytest.mark.slow
def test_readme_recipe_runs_verbatim(tmp_path):
    from mtdense.datasets.synthetic import ReleaseLayoutWriter
    project, bin_dir, files = tmp_path / 'project', tmp_path / 'bin', tmp_path / 'downloads'
    for d in (project, bin_dir, files):
        d.mkdir()
    for d in ('tools', 'configs'):
        (project / d).symlink_to(ROOT / d)
    tree = tmp_path / 'release' / 'PASCAL_MT'
    ReleaseLayoutWriter(str(tree), 'pascal-mt', num=5, seed=8, val_fraction=0.4).run()
    with tarfile.open(project / 'PASCAL_MT.tgz', 'w:gz') as tar:
        tar.add(tree, arcname='PASCAL_MT')
    _official_tiny_swin(files / 'swin_tiny_patch4_window7_224.pth')

    _script(bin_dir / 'python', f'''extra=()
for a in "$@"; do
  case "$a" in
    *tools/train.py) extra=(--iters 2 --auto-scale-lr --cfg-options {MODEL} {LOADERS}
                            train_dataloader.batch_size=2 val_dataloader.batch_size=2) ;;
    *tools/test.py) extra=(--cfg-options {MODEL} {LOADERS} test_dataloader.batch_size=2) ;;
    *tools/analyze_params.py) extra=(--cfg-options {MODEL}) ;;
  esac
done
exec {sys.executable} "$@" "${{extra[@]}}"
''')
    _script(bin_dir / 'wget', f'''dir=.
while [ $# -gt 0 ]; do case "$1" in -P) dir=$2; shift 2;; *) url=$1; shift;; esac; done
cp "{files}/$(basename "$url")" "$dir/"
''')
    _script(bin_dir / 'srun', '''n=1
while [[ "$1" == -* ]]; do
  case "$1" in --ntasks=*) n=${1#--ntasks=} ;; -p) shift ;; esac
  shift
done
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$n SLURM_NODELIST=localhost "$@" & pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
''')
    _script(bin_dir / 'scontrol', 'echo 127.0.0.1\n')

    recipe = readme_recipe().replace('iter_46800', 'iter_2')
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               PYTHON=str(bin_dir / 'python'), PORT=str(_free_port()),
               MASTER_PORT=str(_free_port()), OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', '-euo', 'pipefail', '-c', recipe], cwd=project, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f'{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-6000:]}'

    out = proc.stdout
    assert len(list((project / 'work_dirs' / 'browse_pascal').glob('*.png'))) == 2
    assert 'swin_tiny_patch4_window7_224.pth (official keys -> mmseg)' in out
    work = project / 'work_dirs' / 'vmt_swin-t_pascal-mt'
    assert (work / 'iter_2.pth').is_file()
    import json
    published = json.loads((work / 'metrics_published.json').read_text())
    assert published['protocol'] == {'eval_protocol': 'resized', 'saliency_protocol': 'astmt'}
    # the shipped MTLoRA baselines were evaluated that way: Δm is reported
    assert 'multi_task/delta_m' in published['metrics']
    baselines = json.loads((project / 'work_dirs' / 'baselines_pascal-mt_swin-t.json').read_text())
    assert sorted(baselines['metrics']) == ['human_parts', 'normals', 'saliency', 'semseg']
    assert 'single_task_ft_swin-t_pascal-mt_semseg/metrics.json' in baselines['source']
    # the last command: Δm against those runs (same, native protocol)
    assert out.count('Δm = ') >= 2 and 'baselines_pascal-mt_swin-t.json' in out
