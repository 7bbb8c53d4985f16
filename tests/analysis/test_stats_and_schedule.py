"""Paired-ratio statistics, contention flags and the round scheduler, on synthetic numbers
and stand-in hosts (no model, no timing assertion)."""
import random

import pytest

from mtdense.analysis.report import _invert, paired_ratios
from mtdense.analysis.runner import _time_rounds, _Unit
from mtdense.analysis.settings import ProfileSettings
from mtdense.analysis.stats import cpu_stats, load_stats, paired_ratio, round_values


def test_paired_ratio_is_the_median_of_same_round_ratios():
    num = [2.0, 4.0, 6.6, None, 8.0]
    den = [1.0, 2.0, 3.0, 5.0, 4.0]
    res = paired_ratio(num, den, seed=0)
    assert res['n'] == 4  # the round without a value is left out
    assert res['median'] == pytest.approx(2.0)
    lo, hi = res['ci95']
    assert lo <= 2.0 <= hi <= 2.2
    assert res == paired_ratio(num, den, seed=0)  # seeded bootstrap: reproducible
    assert paired_ratio([None], [1.0]) is None
    one = paired_ratio([3.0], [2.0])
    assert one['median'] == one['ci95'][0] == one['ci95'][1] == 1.5


def test_a_common_load_factor_cancels_in_paired_ratios():
    """Each round scales both points alike (shared-machine load): the paired median is the
    true ratio however wide the spread of the raw times."""
    rng = random.Random(0)
    load = [rng.uniform(1.0, 4.0) for _ in range(30)]
    a = [1.10 * f for f in load]
    b = [1.00 * f for f in load]
    res = paired_ratio(a, b)
    assert res['median'] == pytest.approx(1.10) and res['ci95'] == pytest.approx([1.10, 1.10])
    # never in the same round: nothing to pair
    assert paired_ratio(a[:15] + [None] * 15, [None] * 15 + b[15:]) is None


def test_invert_swaps_the_interval():
    res = dict(median=2.0, ci95=[1.6, 2.5], p10=1.5, p90=3.0, n=5)
    inv = _invert(res)
    assert inv['median'] == 0.5 and inv['ci95'] == [0.4, 0.625]
    assert inv['p10'] == pytest.approx(1 / 3) and inv['p90'] == pytest.approx(1 / 1.5)


def test_cpu_stats_flag_contention():
    wall = [1.0, 1.0, 1.0, 1.0]
    free = cpu_stats(wall, [0.99, 0.98, 1.0, 0.97])
    assert not free['contended'] and free['contended_fraction'] == 0.0
    busy = cpu_stats(wall, [0.5, 0.6, 0.95, 0.4])
    assert busy['contended'] and busy['contended_fraction'] == 0.75
    assert busy['util_median'] == pytest.approx(0.55) and busy['util_min'] == 0.4
    assert load_stats([None, 2.0, 4.0, 3.0]) == dict(min=2.0, median=3.0, max=4.0, n=3)
    assert load_stats([None]) is None


def test_round_values_take_the_median_of_each_round():
    samples = [dict(wall_s=1.0, round=0), dict(wall_s=3.0, round=0), dict(wall_s=2.0, round=2)]
    assert round_values(samples, 3) == [2.0, None, 2.0]


class _FakeHost:
    """Records the order of the commands; each 'iteration' takes a fixed fake time."""

    def __init__(self, log, fail=()):
        self.log, self.fail = log, set(fail)

    def warmup(self, uid, n):
        self.log.append(('warmup', uid))
        return [0.0] * n

    def run(self, uid, iterations):
        self.log.append(('run', uid))
        if uid in self.fail:
            raise RuntimeError('boom')
        return [dict(wall_s=0.5, cpu_s=0.5)] * iterations

    def close(self):
        self.log.append(('close', None))


def _units(host, n):
    return [_Unit(host, dict(label=f'c{i}', config='x.py', num_tasks=1), 'infer')
            for i in range(n)]


def _settings(**kw):
    base = dict(repeats=6, warmup=1, round_iters=2, memory='off', seed=3)
    base.update(kw)
    return ProfileSettings(**base)


def test_interleaved_rounds_run_every_unit_once_per_round_in_shuffled_orders():
    log = []
    units = _units(_FakeHost(log), 4)
    rounds = _time_rounds(units, _settings())
    assert rounds == 6
    runs = [uid for kind, uid in log if kind == 'run']
    assert [kind for kind, _ in log[:4]] == ['warmup'] * 4  # all warmed up first
    per_round = [runs[i:i + 4] for i in range(0, len(runs), 4)]
    assert len(per_round) == 6 and all(sorted(r) == sorted(u.uid for u in units)
                                       for r in per_round)
    assert len({tuple(r) for r in per_round}) > 1  # the order changes from round to round
    for u in units:
        assert len(u.samples) == 12 and sorted({s['round'] for s in u.samples}) == list(range(6))
    # pairs of units are complete in every round
    recs = [dict(label=u.spec['label'], num_tasks=1, mode='infer', error=None, latency={},
                 rounds_ms=round_values(u.samples, rounds)) for u in units]
    assert all(e['n'] == 6 for e in paired_ratios(recs) if e['kind'] == 'method')


def test_max_seconds_stops_all_units_after_the_same_round():
    log = []
    units = _units(_FakeHost(log), 3)
    rounds = _time_rounds(units, _settings(max_seconds=1.5, min_repeats=2))
    # 2 iterations x 0.5 s per round: 1.5 s per unit reached in round 2
    assert rounds == 2 and all(len(u.samples) == 4 for u in units)


def test_a_failing_unit_is_recorded_and_the_others_go_on():
    log = []
    host = _FakeHost(log, fail={'c1@T1:infer'})
    units = _units(host, 3)
    rounds = _time_rounds(units, _settings(repeats=3))
    assert rounds == 3
    assert units[1].error == 'RuntimeError: boom' and units[1].samples == []
    assert all(len(u.samples) == 6 for u in (units[0], units[2]))


def test_sequential_schedule_runs_units_back_to_back_and_closes_their_host():
    log = []
    units = _units(_FakeHost(log), 2)
    _time_rounds(units, _settings(schedule='sequential', repeats=3))
    runs = [uid for kind, uid in log if kind == 'run']
    assert runs == [units[0].uid] * 3 + [units[1].uid] * 3
    assert log[-1] == ('close', None)
