"""Decathlon score (hand-computed values) and DecathlonMetric."""
import json

import pytest
import torch
from mmengine.structures import BaseDataElement

from mtdense.evaluation.functional.decathlon import (decathlon_domain_score, decathlon_score,
                                                     load_decathlon_baselines,
                                                     parse_decathlon_baselines, top1_accuracy)
from mtdense.evaluation.metrics.decathlon_metric import DecathlonMetric
from mtdense.registry import METRICS


def test_domain_score_hand_computed():
    # baseline error 20 %: E_max = 40, alpha = 1000 / 40^2 = 0.625
    assert decathlon_domain_score(10.0, 20.0) == pytest.approx(0.625 * 30 ** 2)  # 562.5
    assert decathlon_domain_score(0.0, 20.0) == pytest.approx(1000.0)
    assert decathlon_domain_score(20.0, 20.0) == pytest.approx(250.0)  # matching the baseline
    assert decathlon_domain_score(40.0, 20.0) == 0.0
    assert decathlon_domain_score(55.0, 20.0) == 0.0  # worse than 2x baseline: clipped at 0
    # baseline error 50 %: E_max = 100, alpha = 0.1; error 25 -> 0.1 * 75^2
    assert decathlon_domain_score(25.0, 50.0) == pytest.approx(562.5)


def test_total_score_and_errors():
    s, per = decathlon_score({'a': 10.0, 'b': 25.0, 'c': 90.0},
                             {'a': 20.0, 'b': 50.0, 'c': 30.0, 'unused': 5.0})
    assert per == pytest.approx({'a': 562.5, 'b': 562.5, 'c': 0.0})
    assert s == pytest.approx(1125.0)
    with pytest.raises(KeyError, match="no baseline error for domains \\['b'\\]"):
        decathlon_score({'b': 1.0}, {'a': 1.0})
    with pytest.raises(ValueError, match='baseline'):
        decathlon_domain_score(10.0, 0.0)
    with pytest.raises(ValueError, match='percentage'):
        decathlon_domain_score(120.0, 10.0)
    assert top1_accuracy(3, 4) == 75.0
    with pytest.raises(ValueError):
        top1_accuracy(5, 4)


def test_baseline_formats(tmp_path):
    data = {'source': 'test numbers', 'domains': {'a': 20, 'b': {'error': 10.5},
                                                  'c': {'accuracy': 70}}}
    assert parse_decathlon_baselines(data) == {'a': 20.0, 'b': 10.5, 'c': 30.0}
    path = tmp_path / 'b.json'
    path.write_text(json.dumps(data))
    assert load_decathlon_baselines(str(path)) == {'a': 20.0, 'b': 10.5, 'c': 30.0}
    with pytest.raises(ValueError, match="exactly one of"):
        parse_decathlon_baselines({'a': {'error': 1, 'accuracy': 99}})
    with pytest.raises(TypeError, match="domain 'a'"):
        parse_decathlon_baselines({'a': 'twenty'})
    with pytest.raises(FileNotFoundError):
        load_decathlon_baselines(str(tmp_path / 'missing.json'))


def sample(domain, gt, pred):
    s = BaseDataElement(metainfo=dict(domain=domain, img_path=f'{domain}.png'))
    s.gt_label = torch.tensor(gt)
    s.pred_label = torch.tensor(pred)
    return s.to_dict()


def run_metric(metric, records):
    metric.dataset_meta = {}
    metric.process({}, [sample(*r) for r in records])
    return metric.evaluate(len(records))


def test_metric_accuracy_and_score():
    metric = METRICS.build(dict(type='DecathlonMetric', baselines={'a': 20.0, 'b': 50.0}))
    assert isinstance(metric, DecathlonMetric)
    # a: 9 / 10 correct (error 10 %), b: 3 / 4 correct (error 25 %)
    records = [('a', 1, 1)] * 9 + [('a', 1, 2)] + [('b', 0, 0)] * 3 + [('b', 0, 1)]
    res = run_metric(metric, records)
    assert res['decathlon/a/top1'] == pytest.approx(90.0)
    assert res['decathlon/b/top1'] == pytest.approx(75.0)
    assert res['decathlon/mean_top1'] == pytest.approx(82.5)
    assert res['decathlon/a/S'] == pytest.approx(562.5)
    assert res['decathlon/b/S'] == pytest.approx(562.5)
    assert res['decathlon/S'] == pytest.approx(1125.0)


def test_metric_missing_domains_and_bad_samples():
    metric = DecathlonMetric(baselines={'a': 20.0, 'b': 50.0})
    with pytest.raises(ValueError, match="baseline domains \\['b'\\] were not evaluated"):
        run_metric(metric, [('a', 1, 1)])
    lenient = DecathlonMetric(baselines={'a': 20.0, 'b': 50.0}, strict=False)
    assert run_metric(lenient, [('a', 1, 1)])['decathlon/S'] == pytest.approx(1000.0)
    required = DecathlonMetric(domains=['a', 'c'])
    with pytest.raises(ValueError, match="missing \\['c'\\]"):
        run_metric(required, [('a', 1, 1)])
    no_base = DecathlonMetric()
    res = run_metric(no_base, [('a', 1, 0), ('a', 1, 1)])
    assert res == {'decathlon/a/top1': 50.0, 'decathlon/mean_top1': 50.0}
    with pytest.raises(ValueError, match='has no label'):
        DecathlonMetric().process({}, [sample('a', -1, 0)])
    with pytest.raises(KeyError, match='pred_label'):
        DecathlonMetric().process({}, [{'gt_label': 1, 'domain': 'a'}])
