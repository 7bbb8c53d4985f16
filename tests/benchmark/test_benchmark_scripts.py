"""The stand-alone benchmark scripts run and write what they document (counted quantities and
the JSON layout only; no timing is asserted)."""
import importlib.util
import json
import os.path as osp

import pytest

from helpers.toolrun import ROOT, TINY_CONFIG


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'benchmarks', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('mode', ['predict', 'train'])
def test_cost_breakdown_parts_add_up(mode, tmp_path):
    out = tmp_path / 'breakdown.json'
    rc = _script('cost_breakdown').main(
        ['--config', TINY_CONFIG, '--mode', mode, '--img-size', '64', '--num-tasks', '1', '2',
         '--rounds', '2', '--warmup', '0', '--num-classes', '8', '--out', str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res['mode'] == mode and res['num_tasks'] == [1, 2] and len(res['loadavg_1m']) == 2
    parts = ({'preprocess', 'backbone', 'heads', 'upsample', 'postprocess'} if mode == 'predict'
             else {'backbone', 'heads', 'losses', 'bwd_backbone', 'optimizer'})
    for T in ('1', '2'):
        med = res['median_ms'][T]
        assert parts <= set(med), sorted(med)
        assert med['total'] > 0 and all(v >= -1e-6 for k, v in med.items() if k != 'total')
    assert set(res['extra_vs_first_T']) == {'2'} and set(res['total_ratio_median']) == {'2'}
    assert res['table_md'].startswith('| part |')


def test_inferencer_throughput_writes_per_batch_size_results(tmp_path):
    res = _script('inferencer_throughput').main(
        [TINY_CONFIG, '--size', '48', '64', '--num-images', '3', '--batch-sizes', '1', '2',
         '--rounds', '2', '--out', str(tmp_path)])
    saved = json.loads((tmp_path / 'inferencer_throughput.json').read_text())
    assert saved['reference_batch_size'] == 1 and saved['num_images'] == 3
    assert set(saved['batch_sizes']) == {'1', '2'}
    for r in saved['batch_sizes'].values():
        assert len(r['seconds_per_round']) == 2
        assert r['img_per_s_p10'] <= r['img_per_s_median'] <= r['img_per_s_p90']
    assert saved['batch_sizes']['1']['throughput_ratio_median'] == 1.0
    assert saved['batch_sizes']['1']['throughput_ratio_ci95'] == [1.0, 1.0]
    assert saved['tasks'] == res['tasks'] and 'cpu_model' in saved['machine']


def test_regime_study_script_checks_its_inputs_before_running(tmp_path):
    """benchmarks/regime_study.sh: --help documents the parts; an unknown part or argument
    is refused before any run starts."""
    import subprocess
    script = osp.join(ROOT, 'benchmarks', 'regime_study.sh')
    out = subprocess.run(['bash', script, '--help'], capture_output=True, text=True, check=True)
    for part in ('regime_levers', 'regime_upstream', 'regime_upstream_lrs', 'regime_iters',
                 'regime_iters_800', 'regime_lr_split'):
        assert part in out.stdout
    bad = subprocess.run(['bash', script, '--only', 'everything'], capture_output=True, text=True)
    assert bad.returncode == 2 and \
        'expected levers, upstream, upstream_lrs, iters, iters_800 or lr_split' in bad.stderr
    # the whole script parses (bash reads a script as it runs: a syntax error near the end
    # would only show after the earlier parts' long runs)
    subprocess.run(['bash', '-n', script], check=True)
    unknown = subprocess.run(['bash', script, '--full', str(tmp_path)], capture_output=True,
                             text=True)
    assert unknown.returncode == 2 and 'unknown argument --full' in unknown.stderr


def _bench_json(folder, rows, name='full', upstream_data=None, baselines=None):
    folder.mkdir()
    res = dict(preset=dict(name=name, iters=200, upstream_iters=800, upstream_data=upstream_data),
               rows=rows, baselines=baselines or dict(swin=dict(label='single-task FT')))
    (folder / 'benchmark.json').write_text(json.dumps(res))
    return str(folder)


def _row(key, label, dm, gap=None, family='swin', status='complete'):
    return dict(key=key, label=label, family=family, status=status, missing=[],
                selection=dict(lr=3e-3), params=dict(percent_of_backbone=1.01),
                delta_m=dict(mean=dm, std=0.5, n=3),
                gap_recovered=None if gap is None else dict(mean=gap, std=4.0, n=3),
                test=dict(semseg=dict(mean=30.0), depth=dict(mean=1.5)))


def test_regime_summary_reads_the_numbers_of_each_folder(tmp_path):
    summary = _script('regime_summary')
    a = _bench_json(tmp_path / 'a', [_row('swin_decoder_only', 'decoder-only', -8.0, 0.0),
                                     _row('swin_vmt', 'VMT', -6.0, 25.0),
                                     _row('mnv2_x', 'conv', -1.0, family='mnv2')])
    b = _bench_json(tmp_path / 'b', [_row('swin_vmt', 'VMT', -2.0, 75.0)], name='regime_upstream',
                    upstream_data=dict(num=1200, seed=7))
    slow = _row('swin_vmt_slow', 'VMT, adapter lr ×0.3', -1.0, 60.0)
    slow['backbone_lr_mult'] = 0.3
    c = _bench_json(tmp_path / 'c', [slow], name='regime_lr_split',
                    baselines=dict(swin=dict(label='single-task FT, backbone lr ×0.1')))
    table = summary.summarize([a, b, c])
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 4  # header, rule, the four Swin rows
    assert ('Δm vs single-task FT, backbone lr ×0.1 | VMT, adapter lr ×0.3 | '
            '0.003 (backbone ×0.3) ') in lines[5]
    assert 'Δm vs' not in lines[2]
    assert ('| VMT | 0.003 | 1.01 | -6.00 ± 0.50 | +25 ± 4 | semseg 30.00, depth 1.50 |'
            in lines[3])
    assert 'own rendering (1200 scenes, seed 7)' in lines[4] and '+75 ± 4' in lines[4]
    assert 'conv' not in table
    incomplete = _bench_json(tmp_path / 'd', [_row('swin_vmt', 'VMT', 0.0, status='incomplete')])
    with pytest.raises(ValueError, match='swin_vmt is incomplete'):
        summary.summarize([incomplete])
    with pytest.raises(FileNotFoundError, match='benchmark.json not found'):
        summary.summarize([str(tmp_path)])
