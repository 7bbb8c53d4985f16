"""``mtdense profile`` (mtdense/cli/profile_tasks.py) and mtdense.analysis on a tiny mmseg Swin at 32 px.

Only counted quantities are asserted (FLOPs, parameters, record and round counts,
schema keys, how paired ratios are formed from the recorded rounds); timings and memory
are checked for presence and type, never for value.
"""
import csv
import importlib.util
import json
import statistics
from pathlib import Path

import mtdense  # noqa: F401,I001  (mmcv.ops stand-in before mmseg imports)
import pytest
import torch
import torch.nn as nn

from mtdense.analysis import (CSV_COLUMNS, SCHEMA_VERSION, ProfileSettings, count_module_flops,
                              latency_stats, make_task_list, profile)
from mtdense.analysis.tables import RATIO_COLUMNS

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
ROUNDS = 3
TINY_CFG = """
model = dict(
    type='MultiTaskDenseModel',
    data_preprocessor=dict(type='MultiTaskDataPreprocessor', size_divisor=32),
    tasks=['semseg', 'human_parts'],
    backbone=dict(
        type='AdaptedBackbone',
        backbone=dict(type='MMSegSwin', embed_dims=16, depths=(1, 1, 2, 1),
                      num_heads=(1, 1, 2, 2), window_size=4, drop_path_rate=0.0),
        peft=dict(type='{peft}')),
    heads=dict(type='LightMultiScaleHead', channels=8))
"""
# tiny Swin: stage widths 16/32/64/128, VMT bottleneck round(d/16) = 1/2/4/8
DIMS, RANKS = (16, 32, 64, 128), (1, 2, 4, 8)
TOKENS = tuple((SIZE // s) ** 2 for s in (4, 8, 16, 32))
LABELS = ('vmt', 'fullft', 'pta')


def _load_tool():
    return importlib.import_module('mtdense.cli.profile_tasks')


def test_subcommand_and_tools_wrapper_run_the_same_tool(capsys):
    from mtdense.cli import COMMANDS
    from mtdense.cli import main as mtdense_main
    assert COMMANDS['profile'][0] == 'profile_tasks'
    with pytest.raises(SystemExit) as exc:
        mtdense_main(['profile', '--help'])
    assert exc.value.code == 0 and 'interleaved' in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location('profile_tasks_tool',
                                                  REPO / 'tools/profile_tasks.py')
    wrapper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wrapper)
    assert wrapper.main is _load_tool().main


def tiny_config(tmp_path, peft='VMTAdapter', name=None) -> str:
    path = Path(tmp_path) / f'tiny_{name or peft}.py'
    path.write_text(TINY_CFG.replace('{peft}', peft))
    return str(path)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """One CLI run: VMT, full FT and per-task adapters, T in {1, 2}, infer + train, all in
    this process (memory in the timing process, to keep it short)."""
    tmp = tmp_path_factory.mktemp('profile')
    cfgs = [tiny_config(tmp, peft, name) for name, peft in
            (('vmt', 'VMTAdapter'), ('fullft', 'FullFineTune'), ('pta', 'PerTaskAdapter'))]
    out = tmp / 'out'
    tool = _load_tool()
    rc = tool.main(cfgs + ['--labels', *LABELS, '--num-tasks', '1', '2',
                           '--img-size', str(SIZE), '--batch-size', '1', '--mode', 'both',
                           '--warmup', '0', '--repeats', str(ROUNDS), '--min-repeats', '1',
                           '--num-classes', '5', '--threads', '1', '--memory', 'shared',
                           '--out', str(out)])
    report = json.loads((out / 'profile.json').read_text())
    return rc, out, report


def _rec(report, label, num_tasks, mode='infer'):
    found = [r for r in report['results']
             if r['label'] == label and r['num_tasks'] == num_tasks and r['mode'] == mode]
    assert len(found) == 1, (label, num_tasks, mode)
    return found[0]


def test_outputs_and_schema(run):
    rc, out, report = run
    assert rc == 0
    for key in ('schema_version', 'tool', 'created', 'machine', 'settings', 'schedule', 'load',
                'flop_convention', 'memory_convention', 'timing_convention', 'results',
                'summary'):
        assert key in report, key
    assert report['schema_version'] == SCHEMA_VERSION == 2
    for key in ('cpu_model', 'cpu_count_logical', 'torch', 'device', 'device_name', 'loadavg',
                'allocator_env', 'mem_available_gb'):
        assert key in report['machine']
    sched = report['schedule']
    assert sched['kind'] == 'interleaved' and sched['isolate'] == 'none'
    assert sched['rounds'] == ROUNDS and sched['units'] == 1 + 3 * 2 * 2
    # backbone alone + 3 configs x 2 T x 2 modes
    assert len(report['results']) == 1 + 3 * 2 * 2
    for r in report['results']:
        assert r['error'] is None, r['error']
        for key in ('label', 'method', 'num_tasks', 'tasks', 'mode', 'img_size', 'batch_size',
                    'latency', 'throughput_img_s', 'memory', 'flops', 'params', 'rounds_ms',
                    'cpu', 'cpu_rounds_ms', 'page_faults', 'loadavg_1m', 'schedule', 'threads',
                    'allocator_env'):
            assert key in r, key
        assert r['latency']['n'] == ROUNDS and len(r['rounds_ms']) == ROUNDS
        assert all(isinstance(v, float) and v > 0 for v in r['rounds_ms'])
        for key in ('median_ms', 'util_median', 'util_p10', 'contended', 'contended_fraction',
                    'threshold'):
            assert key in r['cpu']
        assert isinstance(r['cpu']['contended'], bool)
        assert r['loadavg_1m'] is None or r['loadavg_1m']['n'] == ROUNDS
        assert r['memory']['scope'] == 'shared-process'
        assert r['memory']['method'] in ('rss_hwm_reset', 'ru_maxrss_lifetime')
        for key in ('total', 'backbone', 'heads', 'other', 'by_operator', 'uncounted_ops'):
            assert key in r['flops']
    inf = _rec(report, 'vmt', 2, 'infer')
    assert len(inf['backbone_rounds_ms']) == ROUNDS and 'backbone_latency' in inf
    assert _rec(report, 'vmt', 2, 'train')['optimizer'] == 'fused'
    assert set(report['summary']['per_config']) == set(LABELS)

    with open(out / 'profile.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(report['results'])
    with open(out / 'profile_ratios.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == RATIO_COLUMNS and len(rows) == len(report['summary']['paired'])
    assert (out / 'profile.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_paired_ratios_are_medians_of_same_round_ratios(run):
    _, _, report = run
    paired = report['summary']['paired']
    kinds = {}
    for e in paired:
        kinds.setdefault((e['kind'], e['quantity']), []).append(e)
        assert e['n'] == ROUNDS and e['pairing'] == 'same-round'
        lo, hi = e['ci95']
        assert lo <= e['median'] <= hi and e['p10'] <= e['median'] <= e['p90']
    # T=2 vs T=1 for 3 configs x 2 modes; the backbone split for the inference points;
    # 3 configs x 2 T against the bare backbone; 3 pairs of configs x 2 T x 2 modes
    assert len(kinds[('t_scaling', 'latency')]) == len(kinds[('t_scaling', 'throughput')]) == 6
    assert len(kinds[('t_scaling', 'cpu_time')]) == 6
    assert len(kinds[('backbone_part', 'latency')]) == 3
    assert len(kinds[('vs_backbone', 'latency')]) == 6
    assert len(kinds[('method', 'latency')]) == 12
    # recomputed from the recorded rounds
    for e in kinds[('t_scaling', 'latency')] + kinds[('method', 'latency')] + \
            kinds[('t_scaling', 'cpu_time')]:
        key = 'cpu_rounds_ms' if e['quantity'] == 'cpu_time' else 'rounds_ms'
        a = _rec(report, e['label'], e['num_tasks'], e['mode'])[key]
        b = _rec(report, e['reference']['label'], e['reference']['num_tasks'], e['mode'])[key]
        assert e['median'] == pytest.approx(statistics.median(x / y for x, y in zip(a, b)))
    for e in kinds[('t_scaling', 'throughput')]:
        lat = next(x for x in kinds[('t_scaling', 'latency')]
                   if (x['label'], x['mode']) == (e['label'], e['mode']))
        assert e['median'] == pytest.approx(1.0 / lat['median'])
        assert e['ci95'] == pytest.approx([1.0 / lat['ci95'][1], 1.0 / lat['ci95'][0]])
    summary = report['summary']['per_config']['vmt']
    tput = next(x for x in kinds[('t_scaling', 'throughput')]
                if (x['label'], x['mode']) == ('vmt', 'infer'))
    assert summary['infer_throughput_ratio']['2'] == pytest.approx(tput['median'])


def test_clone_task_names(run):
    _, _, report = run
    assert _rec(report, 'vmt', 2)['tasks'] == ['semseg', 'human_parts']
    assert make_task_list(['semseg', 'normals'], 5) == ['semseg', 'normals', 'semseg_2',
                                                       'normals_2', 'semseg_3']
    with pytest.raises(KeyError):
        make_task_list(['not_a_task'], 2)


def test_vmt_flops_nearly_constant(run):
    _, _, report = run
    one, two = _rec(report, 'vmt', 1)['flops'], _rec(report, 'vmt', 2)['flops']
    # the added task's branch at the 4 tapped blocks: (M x r) @ (r x d) product + output
    # LayerNorm (5 per element) per level
    per_task = sum(m * d * (r + 5) for m, d, r in zip(TOKENS, DIMS, RANKS))
    assert two['backbone'] - one['backbone'] == per_task
    assert two['backbone'] <= 1.05 * one['backbone']
    assert report['summary']['per_config']['vmt']['backbone_flops_ratio']['2'] == pytest.approx(
        two['backbone'] / one['backbone'])
    assert two['heads'] > one['heads']  # one more head


def test_baselines_flops(run):
    _, _, report = run
    base = _rec(report, 'backbone_alone', None)['flops']['backbone']
    ft1, ft2 = (_rec(report, 'fullft', t)['flops']['backbone'] for t in (1, 2))
    assert ft1 == ft2 == base  # one shared pass of the unmodified backbone
    pta1, pta2 = (_rec(report, 'pta', t)['flops']['backbone'] for t in (1, 2))
    assert pta2 == 2 * pta1  # one backbone pass per task
    assert pta1 > base  # plus the adapters


def test_parameter_counts(run):
    _, _, report = run
    p1, p2 = _rec(report, 'vmt', 1)['params'], _rec(report, 'vmt', 2)['params']
    kem = 2 * sum(RANKS)  # scale-and-shift KEM: gamma and beta per tapped block
    assert p2['method_per_task_trainable'] == {'semseg': kem, 'human_parts': kem}
    assert p2['trainable'] - p1['trainable'] == kem + p2['head_trainable_per_task']['human_parts']
    assert p1['backbone_total'] == p2['backbone_total'] - kem
    ft = _rec(report, 'fullft', 1)['params']
    assert ft['backbone_trainable'] == _rec(report, 'backbone_alone', None)['params']['total']
    summary = report['summary']['per_config']['vmt']
    assert summary['trainable_params_per_added_task'] == p2['trainable'] - p1['trainable']


def test_targets_reported(run):
    _, _, report = run
    targets = {t['id']: t for t in report['summary']['targets'] if t['label'] == 'vmt'}
    assert list(targets) == ['flops_t16', 'infer_t8', 'train_t8', 'train_vs_ft_time',
                             'train_vs_ft_memory']
    # T=16 / T=8 were not run: the tool must say so instead of inventing a verdict
    for key in ('flops_t16', 'infer_t8', 'train_t8'):
        assert targets[key]['status'] == 'not measured' and targets[key]['value'] is None
    assert set(targets['train_vs_ft_time']['value']) == {'1', '2'}
    assert targets['train_vs_ft_time']['status'] in ('met', 'not met')


def test_flop_handles_count_broadcast_matmul_and_sdpa():
    class Ops(nn.Module):
        def forward(self, a, b, q, k, v):
            return torch.matmul(a, b), nn.functional.scaled_dot_product_attention(q, k, v)

    a, b = torch.randn(1, 5, 3), torch.randn(4, 3, 2)
    q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 4)
    res = count_module_flops(Ops(), (a, b, q, k, v))
    assert res['by_operator']['matmul'] == 4 * 5 * 3 * 2
    assert res['by_operator']['scaled_dot_product_attention'] == 2 * 3 * 7 * 6 * (8 + 4)


def test_latency_stats_quantiles():
    st = latency_stats([0.001 * x for x in (1, 2, 3, 4, 5)])
    assert st['n'] == 5
    assert st['median_ms'] == pytest.approx(3.0)
    assert st['p10_ms'] == pytest.approx(1.4)
    assert st['p90_ms'] == pytest.approx(4.6)
    assert st['iqr_ms'] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        latency_stats([])


def test_cli_rejects_bad_input(tmp_path):
    tool = _load_tool()
    with pytest.raises(SystemExit, match='not found'):
        tool.main([str(tmp_path / 'missing.py'), '--out', str(tmp_path)])
    with pytest.raises(SystemExit, match='num_tasks'):
        tool.main([str(REPO / 'configs/_base_/models/swin_t_mmseg_vmt.py'), '--num-tasks', '0',
                   '--out', str(tmp_path)])
    with pytest.raises(SystemExit, match='reserved'):
        tool.main([str(REPO / 'configs/_base_/models/swin_t_mmseg_vmt.py'), '--labels',
                   'backbone_alone', '--out', str(tmp_path)])


def test_replot_rewrites_outputs_of_both_schema_versions(run, tmp_path):
    _, out, report = run
    tool = _load_tool()
    assert tool.main(['--replot', str(out / 'profile.json'), '--out', str(tmp_path)]) == 0
    with open(tmp_path / 'profile.csv', newline='') as f:
        assert len(list(csv.DictReader(f))) == len(report['results'])
    assert (tmp_path / 'profile.png').read_bytes()[:4] == b'\x89PNG'
    # a version-1 report (no rounds): ratios of medians, marked as unpaired
    old = dict(report, schema_version=1)
    old.pop('schedule')
    old['results'] = [{k: v for k, v in r.items()
                       if k not in ('rounds_ms', 'backbone_rounds_ms', 'cpu_rounds_ms')}
                      for r in report['results']]
    v1 = tmp_path / 'v1' / 'old.json'
    v1.parent.mkdir()
    v1.write_text(json.dumps(old))
    assert tool.main(['--replot', str(v1)]) == 0
    assert (v1.parent / 'old.png').is_file() and (v1.parent / 'old_ratios.csv').is_file()
    with open(v1.parent / 'old_ratios.csv', newline='') as f:
        assert {row['pairing'] for row in csv.DictReader(f)} == {'unpaired'}
    bad = tmp_path / 'bad.json'
    bad.write_text('{"results": []}')
    with pytest.raises(SystemExit, match='schema version'):
        tool.main(['--replot', str(bad)])


def test_sequential_schedule_is_still_available(tmp_path):
    report = profile(ProfileSettings(
        configs=[('vmt', tiny_config(tmp_path))], num_tasks=[1, 2], img_size=SIZE,
        modes=['infer'], num_classes=5, schedule='sequential', warmup=0, repeats=2,
        min_repeats=1, backbone_alone=False, flops=False, memory='off', threads=1))
    assert report['schedule']['kind'] == 'sequential'
    assert all(r['latency']['n'] == 2 and r['schedule'] == 'sequential'
               for r in report['results'])
    (e,) = [x for x in report['summary']['paired']
            if x['kind'] == 't_scaling' and x['quantity'] == 'latency']
    assert e['pairing'] == 'sequential'


def test_clone_tasks_train_and_count(tmp_path):
    """Cloned task names (beyond the config's 2 tasks) go through a training step and FLOPs."""
    report = profile(ProfileSettings(
        configs=[('vmt', tiny_config(tmp_path))], num_tasks=[3], img_size=SIZE,
        modes=['train', 'count'], num_classes=5, warmup=0, repeats=1, min_repeats=1,
        backbone_alone=False, isolate='none', memory='off', threads=1, optimizer='loop'))
    train, count = report['results']
    assert train['tasks'] == ['semseg', 'human_parts', 'semseg_2']
    assert train['error'] is None and train['latency']['n'] == 1
    assert train['optimizer'] == 'loop'
    assert count['mode'] == 'count' and 'latency' not in count
    assert set(count['flops']['heads_per_task']) == {'semseg', 'human_parts', 'semseg_2'}
    # a clone's head is its base task's head: same FLOPs
    assert count['flops']['heads_per_task']['semseg_2'] == count['flops']['heads_per_task']['semseg']


def test_isolated_memory_pass_measures_each_point_in_its_own_process(tmp_path):
    report = profile(ProfileSettings(
        configs=[('vmt', tiny_config(tmp_path))], num_tasks=[1], img_size=SIZE,
        modes=['infer'], num_classes=5, warmup=0, repeats=1, min_repeats=1,
        backbone_alone=False, flops=False, threads=1))  # memory='isolated' by default
    (rec,) = report['results']
    assert rec['error'] is None
    assert rec['memory']['scope'] == 'isolated-process'
    assert rec['memory']['peak_mb'] > 0 and rec['process'] == 'main'
    # weights + buffers of the tiny model, no optimiser state in inference
    assert 0 < rec['memory']['resident_mb'] < rec['memory']['peak_mb']
    assert 'own_peak_mb' not in rec['memory']  # CUDA only


def test_cached_allocator_reaches_the_worker_and_is_recorded(tmp_path, monkeypatch):
    """--cpu-alloc cached sets glibc's thresholds in the worker process (recorded per point);
    it cannot apply without a worker, and 'auto' isolation picks per-config workers."""
    from mtdense.analysis.settings import CACHED_ALLOC_ENV
    for key in CACHED_ALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    cfg = tiny_config(tmp_path)
    report = profile(ProfileSettings(
        configs=[('vmt', cfg)], num_tasks=[1], img_size=SIZE, modes=['infer'], num_classes=5,
        warmup=0, repeats=1, min_repeats=1, backbone_alone=False, flops=False, memory='off',
        cpu_alloc='cached', threads=1))
    (rec,) = report['results']
    assert rec['error'] is None
    assert rec['allocator_env'] == CACHED_ALLOC_ENV and rec['process'] == 'vmt'
    assert report['schedule']['isolate'] == 'config'
    assert report['settings']['cpu_alloc'] == 'cached'
    tool = _load_tool()
    with pytest.raises(SystemExit, match="cpu_alloc='cached'"):
        tool.main([cfg, '--cpu-alloc', 'cached', '--isolate', 'none', '--out', str(tmp_path)])


@pytest.mark.slow
def test_benchmark_call_form_with_per_config_workers(tmp_path):
    """The call the method benchmark (mtdense.benchmark) makes: one config, a persistent
    worker per config fed in rounds, memory of each point in a fresh process."""
    settings = dict(img_size=SIZE, batch_size=1, modes=['infer', 'train'], device='cpu',
                    num_classes=5, flops=False, backbone_alone=False, threads=1,
                    isolate='config', seed=0, num_tasks=[1, 2], warmup=0, repeats=2,
                    min_repeats=2, max_seconds=2.0)
    report = profile(ProfileSettings(configs=[('row', tiny_config(tmp_path))], **settings))
    assert report['schedule']['isolate'] == 'config'
    assert [(r['num_tasks'], r['mode']) for r in report['results']] == [
        (1, 'infer'), (1, 'train'), (2, 'infer'), (2, 'train')]
    for r in report['results']:
        assert r['error'] is None and r['process'] == 'row'
        assert r['latency']['n'] == 2 and r['throughput_img_s'] > 0
        assert r['memory']['scope'] == 'isolated-process' and r['memory']['peak_mb'] > 0
        assert r['loadavg_before'] is None or len(r['loadavg_before']) == 3


def test_conv_seed_methods_are_profiled_with_their_backbone_alone():
    """Modulation Adapters / depthwise sharing on MobileNetV2: counted FLOPs grow with T (one
    grouped pass over the task-repeated batch), the bare timm CNN is the reference point."""
    cfgs = [('mod', str(REPO / 'configs/_base_/models/mobilenetv2_modulation.py')),
            ('dws', str(REPO / 'configs/_base_/models/mobilenetv2_depthwise_sharing.py'))]
    report = profile(ProfileSettings(
        configs=cfgs, num_tasks=[1, 2], img_size=SIZE, modes=['count'], num_classes=5,
        isolate='none', threads=1))
    assert all(r['error'] is None for r in report['results']), report['results']
    alone = _rec(report, 'backbone_alone', None, 'count')
    for label in ('mod', 'dws'):
        one, two = (_rec(report, label, t, 'count') for t in (1, 2))
        assert one['flops']['backbone'] >= alone['flops']['backbone']
        assert two['flops']['backbone'] >= 1.9 * one['flops']['backbone']
        assert two['params']['trainable'] > one['params']['trainable']
