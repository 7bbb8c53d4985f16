"""Visual Decathlon score (Rebuffi et al., 2017), implemented from its definition.

For domain d with top-1 error E_d (percent) and baseline error E_d^b::

    E_d^max = 2 * E_d^b,   alpha_d = 1000 / (E_d^max)^2
    S_d     = alpha_d * max(0, E_d^max - E_d)^2      (1000 at zero error, 0 at >= 2x baseline)
    S       = sum_d S_d

Errors are in percent; the score does not depend on the unit as long as E_d and
E_d^b share it.

Baselines (a dict or a JSON file): ``{domain: error}``, ``{domain: {"error": e}}``
or ``{domain: {"accuracy": a}}`` (percent), optionally wrapped as
``{"domains": {...}, "source": "..."}`` so the file can say where the numbers
come from.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, Mapping, Tuple, Union

__all__ = ['top1_accuracy', 'decathlon_domain_score', 'decathlon_score',
           'parse_decathlon_baselines', 'load_decathlon_baselines', 'DECATHLON_MAX_DOMAIN_SCORE']

#: S_d of a perfect domain (alpha_d * (E_d^max)^2).
DECATHLON_MAX_DOMAIN_SCORE = 1000.0


def top1_accuracy(correct: int, total: int) -> float:
    """Top-1 accuracy in percent."""
    if total <= 0:
        raise ValueError(f'top1_accuracy: total must be positive, got {total}')
    if not 0 <= correct <= total:
        raise ValueError(f'top1_accuracy: correct={correct} must be in [0, total={total}]')
    return 100.0 * correct / total


def _check_error(value: float, what: str, allow_zero: bool) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or value > 100 or (value == 0 and not allow_zero):
        bound = '[0, 100]' if allow_zero else '(0, 100]'
        raise ValueError(f'{what}: error {value!r} must be a percentage in {bound}')
    return value


def decathlon_domain_score(error: float, baseline_error: float) -> float:
    """S_d = alpha_d * max(0, E^max - E)^2 with E^max = 2 E^b, alpha_d = 1000 / (E^max)^2."""
    error = _check_error(error, 'decathlon_domain_score', allow_zero=True)
    baseline_error = _check_error(baseline_error, 'decathlon_domain_score baseline',
                                  allow_zero=False)
    e_max = 2.0 * baseline_error
    alpha = DECATHLON_MAX_DOMAIN_SCORE / e_max ** 2
    return alpha * max(0.0, e_max - error) ** 2


def decathlon_score(errors: Mapping[str, float],
                    baseline_errors: Mapping[str, float]) -> Tuple[float, Dict[str, float]]:
    """``(S, {domain: S_d})`` over the domains of ``errors`` (each needs a baseline)."""
    missing = [d for d in errors if d not in baseline_errors]
    if missing:
        raise KeyError(f'decathlon_score: no baseline error for domains {missing} '
                       f'(baselines have {sorted(baseline_errors)})')
    per_domain = {d: decathlon_domain_score(e, baseline_errors[d]) for d, e in errors.items()}
    return float(sum(per_domain.values())), per_domain


def parse_decathlon_baselines(data: Mapping, where: str = 'baselines') -> Dict[str, float]:
    """Baseline *errors* (percent) per domain from one of the documented formats."""
    if not isinstance(data, Mapping):
        raise TypeError(f'{where}: expected a mapping domain -> error, got {type(data).__name__}')
    if 'domains' in data:
        data = data['domains']
        if not isinstance(data, Mapping):
            raise TypeError(f'{where}: "domains" must map domain -> error')
    out: Dict[str, float] = {}
    for d, v in data.items():
        if isinstance(v, Mapping):
            keys = [k for k in ('error', 'accuracy') if k in v]
            if len(keys) != 1:
                raise ValueError(f'{where}: domain {d!r} needs exactly one of "error" / '
                                 f'"accuracy" (percent), got keys {sorted(v)}')
            value = float(v[keys[0]])
            if keys[0] == 'accuracy':
                value = 100.0 - _check_error(value, f'{where}: accuracy of {d!r}', True)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            value = float(v)
        else:
            raise TypeError(f'{where}: domain {d!r} maps to {v!r}; expected an error (percent) '
                            'or {"error": e} / {"accuracy": a}')
        out[str(d)] = _check_error(value, f'{where}: baseline of {d!r}', allow_zero=False)
    if not out:
        raise ValueError(f'{where}: no domains')
    return out


def load_decathlon_baselines(src: Union[str, Mapping]) -> Dict[str, float]:
    """:func:`parse_decathlon_baselines` of a dict or a JSON file path."""
    if isinstance(src, Mapping):
        return parse_decathlon_baselines(src)
    if not isinstance(src, str) or not os.path.isfile(src):
        raise FileNotFoundError(f'Decathlon baselines file {src!r} not found')
    try:
        with open(src, encoding='utf-8') as f:
            data = json.load(f)
    except ValueError as e:
        raise ValueError(f'{src}: not valid JSON: {e}') from e
    return parse_decathlon_baselines(data, where=src)
