"""Baselines JSON loader: format, provenance and clear errors."""
import json
import os.path as osp

import pytest

from mtdense.evaluation import load_baselines, parse_baselines

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHIPPED = osp.join(REPO, 'configs', 'baselines', 'pascal_context_swin_t_single_task.json')


def _valid():
    return {'dataset': 'toy', 'backbone': 'tiny', 'source': 'run abc123',
            'metrics': {'semseg': {'mIoU': 50, 'pixAcc': 80.5}, 'depth': {'rmse': 0.5}}}


def _write(tmp_path, obj, text=None):
    p = tmp_path / 'b.json'
    p.write_text(text if text is not None else json.dumps(obj))
    return str(p)


def test_shipped_design_baselines_load_with_provenance():
    b = load_baselines(SHIPPED, tasks=['semseg', 'human_parts', 'saliency', 'normals'])
    assert b.primary(['semseg', 'human_parts', 'saliency', 'normals']) == {
        'semseg': 67.21, 'human_parts': 61.93, 'saliency': 62.35, 'normals': 17.97}
    assert 'MTLoRA' in b.source and b.notes and b.path == SHIPPED


def test_valid_file_and_primary_lookup(tmp_path):
    b = load_baselines(_write(tmp_path, _valid()))
    assert b.metrics['semseg'] == {'mIoU': 50.0, 'pixAcc': 80.5}
    assert b.primary(['depth']) == {'depth': 0.5}
    assert b.method is None and b.notes is None


@pytest.mark.parametrize('mutate, exc, pattern', [
    (lambda d: d.pop('source'), KeyError, r"missing required key\(s\) \['source'\]"),
    (lambda d: d.update(source='  '), ValueError, '"source" must be a non-empty string'),
    (lambda d: d.update(extra=1), KeyError, r"unknown key\(s\) \['extra'\]"),
    (lambda d: d.update(metrics={}), ValueError, '"metrics" must be a non-empty object'),
    (lambda d: d['metrics'].update(segm={'mIoU': 1}), ValueError, "unknown task 'segm'"),
    (lambda d: d['metrics']['semseg'].update(mIoU='67.2'), ValueError,
     r'metrics.semseg.mIoU must be a finite number, got .67\.2.'),
    (lambda d: d['metrics']['semseg'].update(mIoU=True), ValueError, 'finite number'),
    (lambda d: d['metrics'].update(normals=[17.9]), ValueError, 'metrics.normals must be'),
])
def test_invalid_files_raise_clear_errors(tmp_path, mutate, exc, pattern):
    d = _valid()
    mutate(d)
    path = _write(tmp_path, d)
    with pytest.raises(exc, match=pattern) as info:
        load_baselines(path)
    assert path in str(info.value)


def test_missing_task_or_primary_metric(tmp_path):
    path = _write(tmp_path, _valid())
    with pytest.raises(KeyError, match="no baseline for task 'normals'"):
        load_baselines(path, tasks=['semseg', 'normals'])
    d = _valid()
    d['metrics']['depth'] = {'abs_rel': 0.1}
    with pytest.raises(KeyError, match="has no 'rmse'"):
        load_baselines(_write(tmp_path, d), tasks=['depth'])
    d['metrics']['depth'] = {'rmse': 0}
    with pytest.raises(ValueError, match='divides by it'):
        load_baselines(_write(tmp_path, d), tasks=['depth'])


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_baselines(str(tmp_path / 'nope.json'))
    with pytest.raises(ValueError, match='not valid JSON'):
        load_baselines(_write(tmp_path, None, text='{"dataset": '))
    with pytest.raises(ValueError, match='top level'):
        parse_baselines([1, 2])
