"""The method benchmark (tools/benchmark_methods.py, mtdense/benchmark/).

A CI-sized benchmark (2 rows, tiny Swin, a dozen scenes, 2 seeds, 2 learning rates, a
few iterations) runs once per module; the tests check its outputs against the job result
files on disk (every reported number comes from the runs), the plot, and that running
again redoes only a removed job, with the same numbers. No timing assertions.
"""
import csv
import dataclasses
import json
import math
import statistics
from pathlib import Path

import mtdense  # noqa: F401,I001  (mmcv.ops stand-in before mmseg imports)
import numpy as np
import pytest
import torch

from mtdense.benchmark.aggregate import (LOADER_MIN_RATIO, mean_std, primary, select_lr,
                                         selection_scores)
from mtdense.benchmark.compose import (FIXED_MODEL_KEYS, MISSING, ConfigError, compose,
                                       discover_rows, get_dotted, load_row, method_spec, plain)
from mtdense.benchmark.estimate import simulate
from mtdense.benchmark.presets import ALL_ROWS, LR_SPLIT_ROWS, PRESETS, REGIME_ROWS, Preset
from mtdense.evaluation.functional import delta_m

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs' / 'benchmark'
TINY_SWIN = {'model.backbone.backbone.embed_dims': 16,
             'model.backbone.backbone.depths': (1, 1, 1, 1),
             'model.backbone.backbone.num_heads': (1, 1, 1, 1),
             'model.heads.channels': 8, 'train_dataloader.batch_size': 2}
CI = Preset(name='ci', rows=('swin_single_task_ft', 'swin_vmt'), num_trainval=12,
            val_fraction=0.25, num_test=6, img_size=(48, 64), upstream_iters=3, iters=3,
            lrs=(1e-3, 3e-3), seeds=(0, 1),
            # in the worker process (no profiler subprocess: saves its ~5 s start here)
            profile=dict(num_tasks=[1, 2], warmup=0, repeats=1, min_repeats=1,
                         max_seconds=0.2, isolate='none'),
            protocol_options=TINY_SWIN)


# ----------------------------------------------------------------- unit tests
def test_rows_and_presets_are_consistent():
    rows = {r.key: r for r in discover_rows(str(CONFIG_DIR))}
    assert set(ALL_ROWS) == set(rows)
    assert {r.key for r in rows.values() if r.role == 'baseline'} == {
        'swin_single_task_ft', 'mnv2_single_task_ft'}
    regime = {r.key: r for r in discover_rows(str(CONFIG_DIR / 'regime'),
                                              require_baseline=False)}
    assert set(regime) == set(REGIME_ROWS)
    assert {k for k, r in regime.items() if r.backbone_lr_mult != 1.0} == set(LR_SPLIT_ROWS)
    for name, preset in PRESETS.items():
        preset.validate()
        if name.startswith('regime_'):  # the study: the full preset's budget, other rows
            assert set(preset.rows) <= set(ALL_ROWS) | set(regime)
            full = PRESETS['full']
            factor = dict(regime_iters=2, regime_iters_800=4).get(name, 1)
            assert preset.iters == full.iters * factor, name
            assert set(full.lrs) <= set(preset.lrs), name
            assert (preset.seeds, preset.num_trainval, preset.num_test) == (
                full.seeds, full.num_trainval, full.num_test), name
        else:
            assert preset.rows == ALL_ROWS, name
        assert len(preset.seeds) == 3 and preset.test_seed != preset.data_seed, name
    with pytest.raises(ConfigError, match='needs exactly one row'):
        discover_rows(str(CONFIG_DIR / 'regime'))  # its baseline is the main folder's


def test_upstream_data_is_checked_and_rendered_apart(tmp_path):
    """A preset's own upstream rendering: a third dataset with its own seed and scene
    settings, which only the upstream trains on; bad values name the field."""
    from mtdense.benchmark.plan import Plan
    from mtdense.benchmark.run import prepare_data
    up = dict(num=8, seed=5, val_fraction=0.25, scene=dict(ambient=(0.1, 0.2), num_objects=(1, 2)))
    pre = CI.replace(upstream_data=up).validate()
    for bad, match in ((dict(up, seed=CI.data_seed), 'upstream_data.seed'),
                       (dict(up, scene=dict(lights=3)), 'upstream_data.scene'),
                       (dict(up, num=2), 'upstream_data.num')):
        with pytest.raises(ValueError, match=match):
            CI.replace(upstream_data=bad).validate()
    plan = Plan(pre, str(tmp_path / 'out'), str(tmp_path / 'work'), str(CONFIG_DIR))
    assert plan.data_kinds() == ['trainval', 'test', 'upstream']
    data = prepare_data(plan, lambda msg: None)
    root = plan.data_spec('upstream')['root']
    meta = _load(Path(root) / 'meta.json')
    assert meta['seed'] == 5 and meta['num_samples'] == 8
    assert meta['scene_config']['ambient'] == [0.1, 0.2]
    assert data['upstream']['counts'] and root != data['trainval']['root']
    cfg = plan.upstream_config()
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.data_root == root
    # the target's runs do not see it; without upstream_data nothing changes
    row = next(r for r in plan.rows if r.key == 'swin_vmt')
    assert plan.run_config(row, 1e-3, 0).train_dataloader.dataset.data_root == \
        data['trainval']['root']
    plain_plan = Plan(CI, str(tmp_path / 'out2'), str(tmp_path / 'work'), str(CONFIG_DIR))
    assert plain_plan.upstream_data_spec() == plain_plan.data_spec('trainval')
    assert plain_plan.upstream_job()['spec_hash'] != plan.upstream_job()['spec_hash']


def test_gap_recovered_on_hand_values():
    from mtdense.benchmark.aggregate import MIN_GAP, _gap_recovered
    runs = lambda *d: [dict(delta_m=v) for v in d]  # noqa: E731
    rows = [dict(key='swin_single_task_ft', family='swin', runs=runs(1.0, -1.0),
                 delta_m=mean_std([1.0, -1.0])),
            dict(key='swin_decoder_only', family='swin', runs=runs(-9.0, -11.0),
                 delta_m=mean_std([-9.0, -11.0])),
            dict(key='swin_vmt', family='swin', runs=runs(-5.0, -4.0),
                 delta_m=mean_std([-5.0, -4.0])),
            dict(key='mnv2_x', family='mnv2', runs=runs(-3.0), delta_m=mean_std([-3.0]))]
    _gap_recovered(rows)
    vmt = rows[2]['gap_recovered']
    assert vmt['values'] == pytest.approx([50.0, 60.0]) and vmt['mean'] == pytest.approx(55.0)
    assert rows[1]['gap_recovered']['mean'] == pytest.approx(0.0)
    assert rows[0]['gap_recovered']['values'] == pytest.approx([110.0, 90.0])
    assert rows[3]['gap_recovered'] is None  # no decoder-only row in that family
    rows[1]['delta_m'] = mean_std([-MIN_GAP / 2])
    _gap_recovered(rows)
    assert rows[2]['gap_recovered']['mean'] is None and 'no gap' in rows[2]['gap_recovered']['note']


def test_compose_fixes_protocol_keys_and_keeps_the_method():
    from mmengine.config import Config
    for row in discover_rows(str(CONFIG_DIR)):
        model = plain(compose(row).model)
        proto = plain(Config.fromfile(row.protocol).model)
        assert model['tasks'] == ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
        for key in FIXED_MODEL_KEYS:
            if get_dotted(proto, key) is not MISSING:
                assert get_dotted(model, key) == get_dotted(proto, key), (row.key, key)
        if row.family == 'swin':
            assert model['backbone']['backbone']['embed_dims'] == 32  # the demo's Swin
            assert model['heads'] == {'type': 'LightMultiScaleHead', 'channels': 32}
        spec = method_spec(row)
        assert 'backbone' not in spec and 'checkpoint' not in spec
    mtlora = compose(load_row(str(CONFIG_DIR / 'swin_mtlora.py')))
    assert mtlora.model.backbone.peft.type == 'MTLoRA'


def test_compose_takes_whatever_the_method_config_sets(tmp_path):
    """A changed method config (new peft options, another model key) needs no change in
    the tool: the row inherits it, compose keeps it, the protocol's fixed keys win."""
    base = tmp_path / 'models'
    base.mkdir()
    (base / 'my_mtlora.py').write_text(
        f"_base_ = ['{ROOT}/configs/_base_/models/swin_t_mmseg_mtlora.py']\n"
        "model = dict(backbone=dict(peft=dict(shared_rank=7, train_norms=True)),\n"
        "             loss_weights=dict(normals=3.0), heads=dict(channels=99))\n")
    rows = tmp_path / 'rows'
    rows.mkdir()
    (rows / 'swin_protocol.py').write_text(f"_base_ = ['{CONFIG_DIR}/swin_protocol.py']\n")
    (rows / 'swin_mine.py').write_text(
        "_base_ = ['../models/my_mtlora.py']\n"
        "benchmark = dict(label='mine', protocol='swin_protocol.py', role='method')\n")
    row = load_row(str(rows / 'swin_mine.py'))
    model = compose(row).model
    assert model.backbone.peft.type == 'MTLoRA' and model.backbone.peft.shared_rank == 7
    assert model.backbone.peft.train_norms is True
    assert model.loss_weights.normals == 3.0
    assert model.heads.channels == 32  # fixed by the protocol: same heads for every method
    assert model.backbone.backbone.embed_dims == 32


def test_row_errors_name_file_and_key(tmp_path):
    bad = tmp_path / 'swin_bad.py'
    bad.write_text(f"_base_ = ['{ROOT}/configs/_base_/models/swin_t_mmseg_vmt.py']\n"
                   "benchmark = dict(label='x', protocol='nope_protocol.py', role='method')\n")
    with pytest.raises(ValueError, match='swin_bad.py.*benchmark.protocol'):
        load_row(str(bad))
    bad.write_text(f"_base_ = ['{ROOT}/configs/_base_/models/swin_t_mmseg_vmt.py']\n"
                   f"benchmark = dict(label='x', protocol='{CONFIG_DIR}/swin_protocol.py', "
                   "role='boss')\n")
    with pytest.raises(ValueError, match="benchmark.role must be one of"):
        load_row(str(bad))


def test_backbone_lr_mult_scales_every_backbone_parameter_and_no_other(tmp_path):
    """benchmark.backbone_lr_mult: the built optimizer gives every trainable parameter
    under model.backbone (backbone copies, adapters) the grid's lr times the multiple and
    every head parameter the grid's lr; a row without it composes exactly as before; a bad
    value names the file and key."""
    from mmengine.optim import build_optim_wrapper
    from mtdense.registry import MODELS
    from mtdense.utils import register_all_modules
    register_all_modules()
    opts = dict(TINY_SWIN, **{'model.backbone.checkpoint': None})
    for key, mult in (('swin_single_task_ft_slow_backbone', 0.1),
                      ('swin_vmt_fast_adapters', 3.0), ('swin_vmt_slow_adapters', 0.3)):
        row = load_row(str(CONFIG_DIR / 'regime' / f'{key}.py'))
        assert row.backbone_lr_mult == mult
        cfg = compose(row, opts)
        cfg.optim_wrapper.optimizer.lr = 0.01
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        lr_of = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        backbone = [n for n, _ in named if n.startswith('backbone.')]
        assert backbone and len(backbone) < len(named), key
        for n, p in named:
            want = 0.01 * mult if n.startswith('backbone.') else 0.01
            assert lr_of[id(p)] == pytest.approx(want), (key, n)
        # without the multiple: the protocol's optimizer as it is (the shipped rows' text)
        unscaled = compose(dataclasses.replace(row, backbone_lr_mult=1.0), opts)
        shipped = load_row(str(CONFIG_DIR / ('swin_single_task_ft.py' if 'ft' in key
                                             else 'swin_vmt.py')))
        assert unscaled.optim_wrapper == compose(shipped, opts).optim_wrapper
        assert 'paramwise_cfg' not in unscaled.optim_wrapper
        assert 'backbone_lr_mult' not in unscaled.benchmark_row
    bad = tmp_path / 'swin_bad.py'
    for value in ('0', '-1.0', "'fast'", 'True'):
        bad.write_text(f"_base_ = ['{ROOT}/configs/_base_/models/swin_t_mmseg_vmt.py']\n"
                       f"benchmark = dict(label='x', protocol='{CONFIG_DIR}/swin_protocol.py', "
                       f"backbone_lr_mult={value})\n")
        with pytest.raises(ConfigError, match='swin_bad.py.*backbone_lr_mult must be a positive'):
            load_row(str(bad))


def test_preset_baselines_name_the_delta_m_reference(tmp_path):
    """A preset may name another row as its family's Δm reference; the declared baseline
    then counts as a method; no or two baselines, or a name outside the rows, fail early."""
    from mtdense.benchmark.plan import Plan
    work, out = str(tmp_path / 'work'), str(tmp_path / 'out')
    slow = 'swin_single_task_ft_slow_backbone'
    pre = CI.replace(name='ci_lr', rows=CI.rows + (slow,), row_dirs=('regime',),
                     baselines={'swin': slow}).validate()
    plan = Plan(pre, out, work, str(CONFIG_DIR))
    assert {r.key: plan.role(r) for r in plan.rows} == {
        'swin_single_task_ft': 'method', 'swin_vmt': 'method', slow: 'baseline'}
    with pytest.raises(ValueError, match='baselines'):
        CI.replace(baselines={'swin': slow}).validate()  # not a row of the preset
    with pytest.raises(ConfigError, match="family 'swin' needs exactly one baseline"):
        Plan(CI.replace(rows=('swin_vmt',)), out, work, str(CONFIG_DIR))
    with pytest.raises(ConfigError, match='families'):
        Plan(pre.replace(baselines={'swin': slow, 'mnv2': slow}), out, work, str(CONFIG_DIR))
    # the shipped study preset: the slow-backbone single-task FT is its reference
    lr_split = PRESETS['regime_lr_split']
    assert lr_split.baselines == {'swin': slow} and slow in lr_split.rows


def test_selection_rule_and_statistics_on_hand_values():
    val = {1e-3: {'semseg/mIoU': 50.0, 'normals/mErr': 20.0},
           3e-3: {'semseg/mIoU': 60.0, 'normals/mErr': 22.0}}
    scores = selection_scores(val)
    # reference = grid means 55 / 21: +/-(5/55) for semseg, -/+(1/21) for normals
    assert scores[3e-3] == pytest.approx((5 / 55 - 1 / 21) / 2 * 100)
    assert scores[1e-3] == pytest.approx((-5 / 55 + 1 / 21) / 2 * 100)
    assert select_lr(val)['lr'] == 3e-3
    tie = {1e-3: {'semseg/mIoU': 50.0}, 3e-3: {'semseg/mIoU': 50.0}}
    assert select_lr(tie)['lr'] == 1e-3
    # a second dimension (backbone-side lr multiple): ties go to the smaller lr, then one lr
    grid = {(1e-3, 1.0): {'semseg/mIoU': 50.0}, (1e-3, 0.1): {'semseg/mIoU': 60.0},
            (3e-3, 0.1): {'semseg/mIoU': 60.0}, (3e-3, 1.0): {'semseg/mIoU': 40.0}}
    sel = select_lr(grid)
    assert (sel['lr'], sel['backbone_lr_mult']) == (1e-3, 0.1)
    assert set(sel['scores']) == {'0.001', '0.001/bb0.1', '0.003', '0.003/bb0.1'}
    sel = select_lr({(1e-3, 0.1): {'semseg/mIoU': 50.0}, (1e-3, 1.0): {'semseg/mIoU': 50.0}})
    assert (sel['lr'], sel['backbone_lr_mult']) == (1e-3, 1.0)
    with pytest.raises(ValueError, match='backbone_lr_mults'):
        CI.replace(backbone_lr_mults=(0.1, 0.3)).validate()  # 1.0 must be a point
    s = mean_std([1.0, 2.0, 4.0])
    assert s['mean'] == pytest.approx(7 / 3) and s['std'] == pytest.approx(
        statistics.stdev([1.0, 2.0, 4.0])) and s['n'] == 3
    assert math.isnan(mean_std([1.0])['std'])
    assert primary({'semseg/mIoU': 1.0, 'semseg/pixAcc': 2.0, 'depth/rmse': 3.0}) == {
        'semseg': 1.0, 'depth': 3.0}


def test_simulate_schedules_like_the_benchmark():
    jobs = [dict(id='up', deps=[], priority=0, cost=0, seconds=10),
            dict(id='a', deps=['up'], priority=2, cost=5, seconds=5),
            dict(id='b', deps=[], priority=2, cost=8, seconds=8),
            dict(id='c', deps=['a'], priority=3, cost=1, seconds=1)]
    # slot 1: up 0-10, a 10-15, c 15-16; slot 2: b 0-8
    assert simulate(jobs, 2) == pytest.approx(16)
    assert simulate(jobs, 1) == pytest.approx(24)


@pytest.mark.parametrize('mode', ['decoder_only', 'full_ft', 'single_task_ft'])
def test_timm_cnn_baseline_modes(mode):
    import timm
    from mtdense.benchmark.conv_baselines import TimmCNNBaseline
    tasks = ['semseg', 'depth', 'normals']
    torch.manual_seed(0)
    bb = TimmCNNBaseline(dict(model_name='mobilenetv2_100'), tasks, mode=mode)
    ref = timm.create_model('mobilenetv2_100', pretrained=False, features_only=True,
                            out_indices=(1, 2, 3, 4))
    ref.load_state_dict(bb.model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    bb.train()
    if mode == 'decoder_only':
        assert not any(p.requires_grad for p in bb.parameters())
        assert not any(m.training for m in bb.model.modules())  # BN on running statistics
    else:
        assert all(p.requires_grad for p in bb.parameters())
    bb.eval()
    with torch.no_grad():
        feats = bb(x)
        want = ref.eval()(x)
    assert list(feats) == tasks
    for t in tasks:
        assert [tuple(f.shape) for f in feats[t]] == [tuple(w.shape) for w in want]
        for f, w in zip(feats[t], want):
            torch.testing.assert_close(f, w)  # every task starts from the same weights
    rep = bb.param_groups_report()
    n = sum(p.numel() for p in ref.parameters())
    assert rep['backbone_total'] == n
    expected = dict(decoder_only=0, full_ft=n, single_task_ft=len(tasks) * n)[mode]
    assert rep['trainable'] == expected
    assert rep['trainable_percent_of_backbone'] == pytest.approx(100.0 * expected / n)
    if mode == 'single_task_ft':
        assert len({id(p) for net in bb._networks() for p in net.parameters()}) == \
            len(tasks) * len(list(ref.parameters()))
    else:
        assert feats[tasks[0]] is feats[tasks[1]]  # one shared stream


# ------------------------------------------------------- the CI-sized benchmark
@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    from mtdense.benchmark.run import run_benchmark
    out = tmp_path_factory.mktemp('bench')
    results = run_benchmark(CI, str(out), str(out / 'work'), str(CONFIG_DIR))
    return out, results


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_cached_loading_equals_the_plain_loaders(bench):
    from mtdense.benchmark.transforms import CachedMultiTaskLoad
    from mtdense.datasets import SyntheticMTDataset
    from mtdense.datasets.transforms import LoadMultiTaskAnnotations, LoadMultiTaskImage
    root = bench[0] / 'work' / 'data' / 'trainval_seed0_n12_48x64'
    ds = SyntheticMTDataset(data_root=str(root), split='train')
    cached = CachedMultiTaskLoad()
    for _ in range(2):  # a miss, then a hit
        for i in range(3):
            a = cached(dict(ds.get_data_info(i)))
            b = LoadMultiTaskAnnotations()(LoadMultiTaskImage()(dict(ds.get_data_info(i))))
            assert a['task_fields'] == b['task_fields'] and a['ori_shape'] == b['ori_shape']
            for k in ['img'] + [f'gt_{t}' for t in b['task_fields']]:
                np.testing.assert_array_equal(a[k], b[k])
            a['img'][:] = 0  # later transforms may write: the cache keeps its own copy
    assert len(cached._cache) == 3


def test_results_schema(bench):
    out, results = bench
    on_disk = _load(out / 'benchmark.json')
    for key in ('schema_version', 'tool', 'created', 'invocation', 'machine', 'preset',
                'hp_grid', 'seeds', 'tuning_seed', 'selection_rule', 'delta_m_rule', 'data',
                'upstream', 'protocol', 'rows', 'baselines', 'jobs', 'files'):
        assert key in on_disk, key
    assert on_disk['schema_version'] == 1
    assert on_disk['hp_grid'] == {'lr': [1e-3, 3e-3], 'backbone_lr_mult': [1.0]}
    assert on_disk['seeds'] == [0, 1]
    for key in ('cpu_model', 'cpu_count_logical', 'torch', 'mmengine', 'loadavg'):
        assert key in on_disk['machine']
    d = on_disk['data']
    assert d['trainval']['seed'] != d['test']['seed'] and d['test']['num'] == 6
    assert on_disk['jobs']['not_done'] == [] and on_disk['jobs']['failed'] == {}
    assert [r['key'] for r in on_disk['rows']] == list(CI.rows)
    for r in on_disk['rows']:
        assert r['status'] == 'complete' and r['selection']['lr'] in CI.lrs
        assert [run['seed'] for run in r['runs']] == [0, 1]
        assert set(r['test']) == {'semseg', 'human_parts', 'saliency', 'normals', 'depth'}
        for key in ('infer_img_s', 'train_s_per_iter', 'train_peak_mb'):
            assert set(r['cost'][key]) == {'1', '2'}, (r['key'], key)
        assert r['loader']['min_ratio'] == LOADER_MIN_RATIO
    assert (out / 'benchmark.csv').is_file() and (out / 'benchmark.md').is_file()


def test_every_number_comes_from_the_runs(bench):
    out, results = bench
    rows = {r['key']: r for r in _load(out / 'benchmark.json')['rows']}

    def test_metrics(row, lr, seed):
        return primary(_load(out / 'runs' / row / f'lr{lr:g}_s{seed}.test.json')['test_metrics'])

    base_row = rows['swin_single_task_ft']
    base_runs = [test_metrics('swin_single_task_ft', base_row['selection']['lr'], s)
                 for s in CI.seeds]
    base = {t: statistics.fmean(r[t] for r in base_runs) for t in base_runs[0]}
    md = (out / 'benchmark.md').read_text()
    with open(out / 'benchmark.csv') as f:
        csv_rows = {r['key']: r for r in csv.DictReader(f)}
    for key, r in rows.items():
        # the selected lr from the tuning runs' validation metrics
        val = {lr: _load(out / 'runs' / key / f'lr{lr:g}_s{CI.tuning_seed}.json')['val_metrics']
               for lr in CI.lrs}
        assert r['selection']['lr'] == select_lr(val)['lr']
        lr = r['selection']['lr']
        per_seed = [test_metrics(key, lr, s) for s in CI.seeds]
        for t, stat in r['test'].items():
            vals = [m[t] for m in per_seed]
            assert stat['values'] == vals
            assert stat['mean'] == pytest.approx(statistics.fmean(vals))
            assert stat['std'] == pytest.approx(statistics.stdev(vals))
        dms = [delta_m(m, base) for m in per_seed]
        assert r['delta_m']['mean'] == pytest.approx(statistics.fmean(dms))
        assert r['delta_m']['std'] == pytest.approx(statistics.stdev(dms))
        mean = statistics.fmean(dms)
        cell = f'{mean if round(mean, 2) else 0.0:+.2f} ± {statistics.stdev(dms):.2f}'
        assert cell in md, (key, cell)
        assert float(csv_rows[key]['delta_m_mean']) == pytest.approx(statistics.fmean(dms),
                                                                     rel=1e-5, abs=1e-9)
        train = _load(out / 'runs' / key / f'lr{lr:g}_s{CI.seeds[0]}.json')
        assert r['params']['trainable'] == train['params']['trainable']
        assert f'{train["params"]["trainable"]:,}' in md
        prof = _load(out / 'profile' / f'{key}.json')['report']['results']
        step = next(p for p in prof if p['mode'] == 'train' and p['num_tasks'] == 2)
        assert r['cost']['train_s_per_iter']['2'] == step['latency']['median_ms'] / 1000
        trains = [_load(out / 'runs' / key / f'lr{lr:g}_s{s}.json') for s in CI.seeds]
        assert all(t['preload']['samples'] == 9 for t in trains)  # decoded before training
        timings = [t['timing'] for t in trains]
        assert r['loader']['train_img_s'] == pytest.approx(
            statistics.median(t['train_img_s'] for t in timings))
    assert rows['swin_single_task_ft']['delta_m']['mean'] == pytest.approx(0.0, abs=1e-9)


def test_plot_written(bench):
    png = bench[0] / 'delta_m_vs_params.png'
    assert png.is_file() and png.stat().st_size > 5000
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_resume_skips_finished_runs_and_redoes_identically(bench):
    """Re-running redoes only the job whose result was removed (a crash loses at most the
    run in progress), and the redone run gives the same numbers (deterministic per seed)."""
    from mtdense.benchmark.run import run_benchmark
    out, results = bench
    unselected = [lr for lr in CI.lrs if lr != results['rows'][1]['selection']['lr']][0]
    victim = out / 'runs' / 'swin_vmt' / f'lr{unselected:g}_s{CI.tuning_seed}.json'
    before = _load(victim)
    victim.unlink()
    (out / 'runs' / 'swin_vmt' / 'lr9_s9.json.tmp').write_text('{"partial')  # a crashed write
    others = {p: p.stat().st_mtime_ns for p in (out / 'runs').rglob('*.json')}
    n_before = len((out / 'job_times.jsonl').read_text().splitlines())
    again = run_benchmark(CI, str(out), str(out / 'work'), str(CONFIG_DIR))
    lines = (out / 'job_times.jsonl').read_text().splitlines()[n_before:]
    assert [json.loads(x)['id'] for x in lines] == [f'train/swin_vmt/lr{unselected:g}_s0']
    assert {p: p.stat().st_mtime_ns for p in others} == others
    after = _load(victim)
    assert after['val_metrics'] == before['val_metrics']
    assert after['params'] == before['params']
    assert [r['delta_m'] for r in again['rows']] == [r['delta_m'] for r in results['rows']]
    assert again['invocation']['resumed_jobs'] > 0
    assert 'not redone' in (out / 'benchmark.log').read_text()


def test_reuse_from_runs_only_the_new_rows(bench, tmp_path):
    """--reuse-from: a second folder with one more row (a regime variant) in the same work
    folder copies the first folder's identical jobs and runs only the new row's."""
    from mtdense.benchmark.run import run_benchmark
    out, results = bench
    pre = CI.replace(name='ci_regime', rows=CI.rows + ('swin_vmt_kem_none',),
                     row_dirs=('regime',))
    out2 = tmp_path / 'regime'
    again = run_benchmark(pre, str(out2), str(out / 'work'), str(CONFIG_DIR),
                          reuse_from=str(out))
    ran = [json.loads(x)['id'] for x in (out2 / 'job_times.jsonl').read_text().splitlines()]
    assert ran and all('swin_vmt_kem_none' in i for i in ran), ran
    assert again['invocation']['reused_jobs'] == 13
    old = {r['key']: r for r in results['rows']}
    for r in again['rows'][:2]:
        assert r['delta_m'] == old[r['key']]['delta_m'] and r['runs'] == old[r['key']]['runs']
    new = again['rows'][2]
    assert new['status'] == 'complete' and new['method']['peft']['kem'] == 'none'
    assert again['jobs']['reused_count'] == 13 and again['jobs']['reused'] == [str(out)]
    assert '13 of the 19 jobs were taken from' in (out2 / 'benchmark.md').read_text()
    copied = _load(out2 / 'runs' / 'swin_vmt' / f'lr{CI.lrs[0]:g}_s0.json')
    assert copied['reused_from'] == str(out)
    own = _load(out2 / 'runs' / 'swin_vmt_kem_none' / f'lr{CI.lrs[0]:g}_s0.json')
    assert 'reused_from' not in own
    with pytest.raises(FileNotFoundError, match='not a benchmark folder'):
        run_benchmark(pre, str(tmp_path / 'x'), str(out / 'work'), str(CONFIG_DIR),
                      reuse_from=str(tmp_path))


def test_named_baseline_is_the_delta_m_reference(bench, tmp_path):
    """A preset naming another baseline (single-task FT with its backbone at 0.1x the lr):
    every row's Δm is against that row's mean test metrics; the shipped single-task FT is a
    method row; the table says which lr the backbone had."""
    from mtdense.benchmark.run import run_benchmark
    out, results = bench
    slow = 'swin_single_task_ft_slow_backbone'
    pre = CI.replace(name='ci_lr_split', rows=(slow,) + CI.rows, row_dirs=('regime',),
                     baselines={'swin': slow})
    out2 = tmp_path / 'lr_split'
    again = run_benchmark(pre, str(out2), str(out / 'work'), str(CONFIG_DIR),
                          reuse_from=str(out))
    rows = {r['key']: r for r in again['rows']}
    assert [r['role'] for r in again['rows']] == ['baseline', 'method', 'method']
    assert again['baselines']['swin']['row'] == slow
    base = again['baselines']['swin']['metrics']
    assert base == {t: v['mean'] for t, v in rows[slow]['test'].items()}
    for r in again['rows']:
        for run in r['runs']:
            assert run['delta_m'] == pytest.approx(delta_m(run['test'], base))
    assert rows[slow]['delta_m']['mean'] == pytest.approx(0.0, abs=1e-9)
    old = {r['key']: r for r in results['rows']}
    for key in CI.rows:  # the same (reused) runs, measured against the other reference
        assert [r['test'] for r in rows[key]['runs']] == [r['test'] for r in old[key]['runs']]
    assert rows['swin_single_task_ft']['delta_m'] != old['swin_single_task_ft']['delta_m']
    assert rows[slow]['backbone_lr_mult'] == 0.1
    md = (out2 / 'benchmark.md').read_text()
    assert '(backbone ×0.1)' in md and 'single-task FT, backbone lr ×0.1' in md
    with open(out2 / 'benchmark.csv') as f:
        lines = {line['key']: line for line in csv.DictReader(f)}
    assert lines[slow]['role'] == 'baseline' and lines[slow]['backbone_lr_mult'] == '0.1'
    assert lines['swin_single_task_ft']['role'] == 'method'


def test_backbone_lr_multiples_are_a_second_grid_dimension(bench, tmp_path):
    """Preset.backbone_lr_mults: every row whose backbone side trains also tunes each
    multiple (known from its profile), decoder-only only the one-lr points; the selected
    point's multiple reaches the seed runs' configs, the results and the tables."""
    from mmengine.config import Config
    from mtdense.benchmark.run import run_benchmark
    out, results = bench
    pre = CI.replace(name='ci_mults', rows=CI.rows + ('swin_decoder_only',),
                     backbone_lr_mults=(1.0, 0.1))
    out2 = tmp_path / 'mults'
    again = run_benchmark(pre, str(out2), str(out / 'work'), str(CONFIG_DIR),
                          reuse_from=str(out))
    ran = [json.loads(x)['id'] for x in (out2 / 'job_times.jsonl').read_text().splitlines()]
    for key in CI.rows:  # the one-lr points are the first folder's; only the new ones train
        assert {i for i in ran if i.startswith(f'train/{key}/') and '_s0' in i} == {
            f'train/{key}/lr{lr:g}_bb0.1_s0' for lr in CI.lrs}, ran
    rows = {r['key']: r for r in again['rows']}
    assert [(t['lr'], t['backbone_lr_mult']) for t in rows['swin_decoder_only']['tuning']] == [
        (lr, 1.0) for lr in CI.lrs]
    for key in CI.rows:
        r = rows[key]
        assert len(r['tuning']) == 2 * len(CI.lrs) and len(r['selection']['scores']) == 4
        sel = r['selection']
        for run in r['runs']:
            assert run['backbone_lr_mult'] == sel['backbone_lr_mult']
            cfg = Config.fromfile(str(out / 'work' / 'runs' / key / run['run'] / 'config.py'))
            keys = (cfg.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys') or {}
            want = None if sel['backbone_lr_mult'] == 1.0 else sel['backbone_lr_mult']
            assert (keys.get('backbone.') or {}).get('lr_mult') == want, (key, run['run'])
        assert r['status'] == 'complete'
    md = (out2 / 'benchmark.md').read_text()
    assert f'lr {CI.lrs[0]:g}, backbone ×0.1' in md and 'backbone-side lr multiples' in md
    assert again['hp_grid'] == dict(lr=list(CI.lrs), backbone_lr_mult=[1.0, 0.1])


def test_reuse_from_takes_seed_runs_once_a_wider_grid_selects(bench, tmp_path):
    """A wider lr grid reusing the first folder: only the new grid point trains first; a
    row whose selection stays the same then takes its seed runs and tests from the first
    folder (asked for when the selection is known), a row whose selection moves trains them."""
    from mtdense.benchmark.run import run_benchmark
    out, results = bench
    pre = CI.replace(name='ci_wider', lrs=CI.lrs + (1e-2,))
    out2 = tmp_path / 'wider'
    again = run_benchmark(pre, str(out2), str(out / 'work'), str(CONFIG_DIR),
                          reuse_from=str(out))
    ran = [json.loads(x)['id'] for x in (out2 / 'job_times.jsonl').read_text().splitlines()]
    assert {i for i in ran if 'lr0.01_s0' in i and i.startswith('train/')} == {
        f'train/{r}/lr0.01_s0' for r in CI.rows}
    old = {r['key']: r for r in results['rows']}
    for r in again['rows']:
        same = r['selection']['lr'] == old[r['key']]['selection']['lr']
        seeds_ran = [i for i in ran if i.startswith(f'train/{r["key"]}/') and '_s0' not in i]
        assert (not seeds_ran) if same else seeds_ran, (r['key'], ran)
        if same:
            assert r['runs'] == old[r['key']]['runs']


def test_duration_estimate_from_the_measured_jobs(bench):
    from mtdense.benchmark.estimate import estimate, format_estimate
    out, _ = bench
    measured = _load(out / 'benchmark.json')
    short = estimate(measured, CI, str(out))
    longer = estimate(measured, CI.replace(iters=30), str(out))
    for est in (short, longer):
        for basis in ('idle', 'as_measured'):
            e = est[basis]
            assert e['num_jobs'] == 13 and e['estimated_seconds'] > 0
            assert set(e['row_models']) == set(CI.rows)
    assert longer['idle']['worker_seconds'] > short['idle']['worker_seconds']
    times = [json.loads(x) for x in (out / 'job_times.jsonl').read_text().splitlines()]
    assert all(t['cpu_seconds'] is not None and t['cpu_seconds'] > 0 for t in times)
    assert 'idle machine' in format_estimate(short)
