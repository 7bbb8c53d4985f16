"""Benchmark presets: data, budget, grid, seeds and measurement settings.

Every row of a preset gets the same data, iterations, batch, learning-rate grid and
seeds; the row configs fix everything else (``configs/benchmark/``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

__all__ = ['Preset', 'PRESETS', 'get_preset', 'ALL_ROWS', 'LEVER_ROWS', 'LR_SPLIT_ROWS',
           'REGIME_ROWS', 'BROAD_UPSTREAM']

#: every row shipped in configs/benchmark/ (the order of the tables)
ALL_ROWS: Tuple[str, ...] = (
    'swin_single_task_ft', 'swin_full_ft', 'swin_decoder_only', 'swin_bitfit',
    'swin_per_task_adapter', 'swin_per_task_lora', 'swin_mtlora', 'swin_vmt', 'swin_vmt_lite',
    'mnv2_single_task_ft', 'mnv2_full_ft', 'mnv2_decoder_only', 'mnv2_modulation',
    'mnv2_depthwise_sharing',
)

#: validation share of a preset's own upstream rendering when ``upstream_data`` names none
UPSTREAM_VAL_FRACTION = 0.1

#: the regime study's VMT variants (configs/benchmark/regime/), one lever of the method each
LEVER_ROWS: Tuple[str, ...] = (
    'swin_vmt_bottleneck_x2', 'swin_vmt_bottleneck_x4', 'swin_vmt_scale_4',
    'swin_vmt_kem_lowrank', 'swin_vmt_kem_none', 'swin_vmt_deep_taps', 'swin_vmt_train_norms',
)
#: the regime study's rows with another backbone-side lr than the heads' (benchmark.
#: backbone_lr_mult): single-task FT's backbones at 0.1x, VMT's adapters at 0.3x and 3x
LR_SPLIT_ROWS: Tuple[str, ...] = (
    'swin_single_task_ft_slow_backbone', 'swin_vmt_slow_adapters', 'swin_vmt_fast_adapters',
)
#: every row of configs/benchmark/regime/
REGIME_ROWS: Tuple[str, ...] = LEVER_ROWS + LR_SPLIT_ROWS
#: the regime study's Swin reference rows (Δm baseline, the gap's two ends, VMT as shipped)
_REGIME_REFERENCE = ('swin_single_task_ft', 'swin_decoder_only', 'swin_vmt')

#: the broad upstream of the ``regime_upstream`` preset: a rendering of its own (seed 7),
#: three times the scenes, other layouts (wider and deeper rooms, more objects and people,
#: other camera heights, pitches and yaws, farther placements) and other lighting (darker
#: to brighter ambient, more sensor noise); the target data (train / val / test) is the
#: ``full`` preset's
BROAD_UPSTREAM: Dict[str, Any] = dict(
    num=1200, seed=7, val_fraction=0.05,
    scene=dict(room_width=(3.0, 11.0), room_depth=(4.0, 12.0), room_height=(2.3, 4.0),
               cam_height=(0.6, 2.4), cam_pitch_deg=(-5.0, 35.0), cam_yaw_deg=(-40.0, 40.0),
               num_objects=(1, 9), num_people_probs=(0.2, 0.35, 0.45),
               placement_distance=(1.2, 9.0), ambient=(0.15, 0.6), image_noise_std=4.0))


@dataclass(frozen=True)
class Preset:
    """What one benchmark invocation trains and measures.

    Attributes:
        name: preset name (recorded; names the default output folders).
        rows: row keys (``configs/benchmark/<key>.py``), table order.
        num_trainval: scenes of the training rendering (seed ``data_seed``); the last
            ``val_fraction`` of them are the validation split (tuning only).
        val_fraction: see ``num_trainval``.
        num_test: scenes of the held-out test rendering (seed ``test_seed``), used only
            for the reported numbers of the selected runs.
        img_size: rendered (H, W).
        data_seed / test_seed: the two renderings' seeds (must differ).
        upstream_iters: iterations of the Swin upstream pretraining (semseg + depth).
        iters: training iterations of every run (batch and crop from the protocol).
        lrs: the learning-rate grid, the same for every row.
        backbone_lr_mults: the second grid dimension: the backbone side's lr (everything
            trainable under ``model.backbone``) as a multiple of the grid's lr, which the
            heads keep. ``(1.0,)``: one lr for all. A row whose backbone side trains nothing
            (decoder-only) runs at 1.0 only; a row's own ``backbone_lr_mult`` multiplies it.
        seeds: training seeds; ``seeds[0]`` is also the tuning seed (its run at the
            chosen lr is reused as that seed's final run).
        profile: settings of the cost measurement (``mtdense.analysis.ProfileSettings``
            fields): task counts, warm-up, repeats, time cap.
        protocol_options: ``--cfg-options``-style overrides of every protocol (and of
            the upstream config), e.g. a smaller Swin for tests.
        workers: parallel worker processes (one thread each).
        row_dirs: subfolders of the row folder (``configs/benchmark/``) whose rows this
            preset may also use (e.g. ``('regime',)``: the regime study's variants); their
            Δm baseline is the main folder's.
        upstream_data: ``None`` (the Swin upstream trains on this preset's own training
            split, fitted to the target) or a third rendering for it alone:
            ``dict(num=, seed=, val_fraction=, scene=dict(<SceneConfig fields>))``, e.g.
            other layouts and lighting, so the frozen backbone is general rather than
            fitted to the target scenes.
        baselines: ``{family: row key}``: the Δm reference of a family when it is not the
            row with ``role='baseline'`` (e.g. single-task FT with a lower backbone lr);
            that row then counts as a method.
    """
    name: str
    rows: Tuple[str, ...] = ALL_ROWS
    num_trainval: int = 400
    val_fraction: float = 0.2
    num_test: int = 100
    img_size: Tuple[int, int] = (96, 128)
    data_seed: int = 0
    test_seed: int = 1
    upstream_iters: int = 800
    iters: int = 300
    lrs: Tuple[float, ...] = (1e-3, 3e-3)
    backbone_lr_mults: Tuple[float, ...] = (1.0,)
    seeds: Tuple[int, ...] = (0, 1, 2)
    profile: Dict[str, Any] = field(default_factory=lambda: dict(
        num_tasks=[1, 5, 8], warmup=1, repeats=5, min_repeats=2, max_seconds=2.0))
    protocol_options: Dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    row_dirs: Tuple[str, ...] = ()
    upstream_data: Optional[Dict[str, Any]] = None
    baselines: Dict[str, str] = field(default_factory=dict)

    def validate(self) -> 'Preset':
        """Raise ``ValueError`` naming the field and value that cannot work."""
        def bad(name: str, value: Any, expected: str) -> None:
            raise ValueError(f'preset {self.name!r}: {name}={value!r}; expected {expected}')
        if not self.rows or len(set(self.rows)) != len(self.rows):
            bad('rows', self.rows, 'a non-empty list of distinct row keys')
        if self.num_trainval < 4:
            bad('num_trainval', self.num_trainval, '>= 4')
        n_val = round(self.num_trainval * self.val_fraction)
        if not 0 < n_val < self.num_trainval:
            bad('val_fraction', self.val_fraction,
                f'a share of num_trainval={self.num_trainval} leaving >= 1 train and val scene')
        if self.num_test < 1:
            bad('num_test', self.num_test, '>= 1')
        if self.data_seed == self.test_seed:
            bad('test_seed', self.test_seed, f'a seed other than data_seed={self.data_seed} '
                '(the test split is a second, independent rendering)')
        if self.iters < 2 or self.upstream_iters < 2:
            bad('iters/upstream_iters', (self.iters, self.upstream_iters), '>= 2 each')
        if not self.lrs or any(lr <= 0 for lr in self.lrs) or len(set(self.lrs)) != len(self.lrs):
            bad('lrs', self.lrs, 'distinct positive learning rates')
        mults = self.backbone_lr_mults
        if (1.0 not in mults or len(set(mults)) != len(mults)
                or any(isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0
                       for m in mults)):
            bad('backbone_lr_mults', mults, 'distinct positive multiples including 1.0 (the '
                'one-lr point every row has)')
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            bad('seeds', self.seeds, 'distinct seeds')
        if self.workers < 1:
            bad('workers', self.workers, '>= 1')
        for d in self.row_dirs:
            if not isinstance(d, str) or not d or os.path.isabs(d) or '..' in d.split('/'):
                bad('row_dirs', self.row_dirs, 'subfolder names of the row folder')
        if self.upstream_data is not None:
            self._validate_upstream_data(bad)
        if not isinstance(self.baselines, dict) or any(
                not isinstance(k, str) or k not in self.rows
                for k in self.baselines.values()):
            bad('baselines', self.baselines, '{family: row key} naming rows of the preset')
        ts = list(self.profile.get('num_tasks', []))
        if 1 not in ts:
            bad('profile.num_tasks', ts, 'a list containing 1')
        return self

    def _validate_upstream_data(self, bad) -> None:
        from mtdense.datasets.synthetic.scene import SceneConfig
        up = self.upstream_data
        if not isinstance(up, dict) or set(up) - {'num', 'seed', 'val_fraction', 'scene'}:
            bad('upstream_data', up, "None or dict(num=, seed=, val_fraction=, scene=dict(...))")
        if not isinstance(up.get('num'), int) or up['num'] < 4:
            bad('upstream_data.num', up.get('num'), 'an integer >= 4')
        if not isinstance(up.get('seed'), int) or up['seed'] in (self.data_seed, self.test_seed):
            bad('upstream_data.seed', up.get('seed'), f'an integer other than data_seed='
                f'{self.data_seed} and test_seed={self.test_seed} (a rendering of its own)')
        if not 0.0 < float(up.get('val_fraction', UPSTREAM_VAL_FRACTION)) < 0.5:
            bad('upstream_data.val_fraction', up.get('val_fraction'), 'in (0, 0.5)')
        try:
            SceneConfig.from_dict(up.get('scene') or {})
        except (TypeError, ValueError, KeyError) as exc:
            bad('upstream_data.scene', up.get('scene'), f'SceneConfig fields ({exc})')

    @property
    def tuning_seed(self) -> int:
        return self.seeds[0]

    def replace(self, **changes: Any) -> 'Preset':
        """A copy with ``changes`` (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d['tuning_seed'] = self.tuning_seed
        return d


PRESETS: Dict[str, Preset] = {
    # <= 15 min on 2 idle cores: every row with the full preset's protocol (batch 8, 96x96
    # crops: its measured per-iteration times carry over to the full preset's estimate), a
    # short schedule, the smallest grid that still tunes, smaller validation/test sets
    'quick': Preset(name='quick', num_trainval=240, num_test=64, upstream_iters=500, iters=30,
                    lrs=(1e-3, 3e-3), seeds=(0, 1, 2),
                    profile=dict(num_tasks=[1, 5, 8], warmup=0, repeats=2, min_repeats=1,
                                 max_seconds=0.5)),
    # <= 90 min on 2 idle cores (estimated from the quick run's per-run times with
    # tools/benchmark_methods.py --preset full --estimate-from DIR; docs/benchmarks.md).
    # Grid: the recorded quick run chose 3e-3, the top of its grid, for 12 of 14 rows and
    # 1e-3 for the other two, so the grid reaches one step further up
    'full': Preset(name='full', num_trainval=400, num_test=100, upstream_iters=800, iters=200,
                   lrs=(1e-3, 3e-3, 1e-2), seeds=(0, 1, 2),
                   profile=dict(num_tasks=[1, 5, 8], warmup=1, repeats=5, min_repeats=2,
                                max_seconds=2.0)),
}
# 'full_lr_split': the full preset with the backbone side's lr as a second grid dimension (1 and
# 0.1 times the heads' lr) for every row whose backbone side trains: the regime study found
# single-task FT 16 Δm points better with its backbones at 0.1x. Run in the full preset's work
# folder with --reuse-from the recorded full run: only the 0.1x points (and moved seeds) train
PRESETS['full_lr_split'] = PRESETS['full'].replace(name='full_lr_split',
                                                   backbone_lr_mults=(1.0, 0.1))
# The regime study (docs/regime_study.md), all with the full preset's data, budget, grid and
# seeds. 'regime_levers': one lever of VMT per row on the full preset's upstream, next to the
# reference rows (its own work folder: upstream and references train again, identically).
# 'regime_upstream': the reference rows and VMT with 2x bottlenecks on the broad upstream
# (BROAD_UPSTREAM, 3x the full preset's upstream iterations).
PRESETS['regime_levers'] = PRESETS['full'].replace(
    name='regime_levers', rows=_REGIME_REFERENCE + LEVER_ROWS, row_dirs=('regime',))
PRESETS['regime_upstream'] = PRESETS['full'].replace(
    name='regime_upstream', rows=_REGIME_REFERENCE + ('swin_vmt_bottleneck_x2',),
    row_dirs=('regime',), upstream_iters=2400, upstream_data=BROAD_UPSTREAM)
# 'regime_upstream_lrs': regime_upstream with the lr grid widened both ways (full fine-tuning
# may want less than 1e-3, frozen-backbone rows more than 1e-2); run in regime_upstream's work
# folder with --reuse-from its results, only the new grid points (and re-selected seeds) train
PRESETS['regime_upstream_lrs'] = PRESETS['regime_upstream'].replace(
    name='regime_upstream_lrs', lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2))
# 'regime_iters': the reference rows with twice the iterations (its own work folder: the
# upstream is trained again, identically, from the same config and seed)
PRESETS['regime_iters'] = PRESETS['full'].replace(
    name='regime_iters', rows=_REGIME_REFERENCE, iters=400)
# 'regime_iters_800': the same at four times the full preset's iterations (its own work folder)
PRESETS['regime_iters_800'] = PRESETS['regime_iters'].replace(
    name='regime_iters_800', iters=800)
# 'regime_lr_split': the heads' lr apart from the backbone side's. Single-task FT with its
# backbones at a tenth of the heads' lr is the Δm reference (the usual fine-tuning recipe);
# the shipped single-task FT is a method row beside it. The grid reaches 1e-1 (the heads of
# frozen-backbone rows chose the top of the full preset's grid, and then 3e-2, the top of a
# grid to 3e-2). Run in the full preset's work folder with --reuse-from its results: the
# reference rows' full-grid runs are taken
PRESETS['regime_lr_split'] = PRESETS['full'].replace(
    name='regime_lr_split', rows=('swin_single_task_ft_slow_backbone',) + _REGIME_REFERENCE
    + LR_SPLIT_ROWS[1:], row_dirs=('regime',), lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    baselines={'swin': 'swin_single_task_ft_slow_backbone'})


def get_preset(name: str, overrides: Optional[Dict[str, Any]] = None) -> Preset:
    """A shipped preset by name, with optional field overrides, validated."""
    if name not in PRESETS:
        raise KeyError(f'unknown preset {name!r}; expected one of {sorted(PRESETS)}')
    preset = PRESETS[name]
    if overrides:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(Preset)})
        if unknown:
            raise KeyError(f'preset overrides: unknown field(s) {unknown}')
        preset = preset.replace(**overrides)
    return preset.validate()
