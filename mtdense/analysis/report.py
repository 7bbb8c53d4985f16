"""What a profiling report says: same-round paired ratios with confidence intervals,
per-config summaries and the cost targets (the outputs are in :mod:`.tables`)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Union

from .settings import BACKBONE_ALONE, TIMED_MODES
from .stats import paired_ratio

__all__ = ['summarize', 'paired_ratios', 'find_ratio', 'evaluate_targets', 'TARGETS',
           'memory_convention', 'timing_convention']

#: The cost targets (docs/profiling.md): counted backbone+adapter FLOPs T=16 / T=1,
#: inference throughput T=8 / T=1 and training-step time T=8 / T=1 (paired medians).
TARGETS = dict(flops_t16=1.05, infer_t8=0.9, train_t8=1.15)
VMT_METHODS = ('VMTAdapter', 'VMTAdapterLite')


def memory_convention(device: str, memory: str) -> str:
    if memory == 'off':
        return 'memory not measured'
    where = ('each point alone in a fresh process (isolated)' if memory == 'isolated' else
             'in the timing process, other points resident (shared: only increase_mb is the '
             "point's own)")
    if device.startswith('cuda'):
        return ('peak_mb = torch.cuda.max_memory_allocated over the measured iterations (reset '
                f'before); increase_mb = peak - allocated at their start; {where}')
    return ('peak_mb = process VmHWM over the measured iterations (reset via '
            '/proc/self/clear_refs; includes model, inputs, interpreter); increase_mb = peak - '
            f'RSS at their start (activations, workspaces, gradients, optimizer state); {where}')


def timing_convention(schedule: str) -> str:
    how = ('interleaved: every round runs each (point, mode) once, in a new shuffled order; '
           'ratios are medians of same-round ratios' if schedule == 'interleaved' else
           'sequential: each point timed back to back, one after the other; ratios pair the '
           'k-th iteration of one point with the k-th of another, taken at different times')
    return (f'{how}; latency = wall time per iteration (CUDA-synchronised), cpu = this '
            'process\'s CPU time per iteration (all threads); ci95 = percentile bootstrap of the '
            'median over rounds')


# --------------------------------------------------------------------------- records
def _ok(rec: Dict[str, Any]) -> bool:
    return not rec.get('error') and 'latency' in rec


def _get(records, label: str, num_tasks: Optional[int], mode: str) -> Optional[Dict[str, Any]]:
    for r in records:
        if (r['label'] == label and r['num_tasks'] == num_tasks and r['mode'] == mode
                and _ok(r)):
            return r
    return None


def _ratio(a: Dict[str, Any], b: Dict[str, Any], key: str, pairing: str, seed: int
           ) -> Optional[Dict[str, Any]]:
    """``a / b`` of per-round times (``key``); a ratio of medians when there are no rounds."""
    ra, rb = a.get(key), b.get(key)
    if ra and rb:
        res = paired_ratio(ra, rb, seed)
        if res is not None:
            res['pairing'] = pairing
        return res
    med = {'rounds_ms': ('latency', 'median_ms'), 'backbone_rounds_ms': ('backbone_latency',
           'median_ms'), 'cpu_rounds_ms': ('cpu', 'median_ms')}[key]
    if (a.get(med[0]) or {}).get(med[1]) and (b.get(med[0]) or {}).get(med[1]):
        # schema 1 reports: medians only, taken at different times
        v = a[med[0]][med[1]] / b[med[0]][med[1]]
        return dict(median=v, ci95=None, p10=None, p90=None, n=None, pairing='unpaired')
    return None


def _entry(kind: str, mode: str, a, b, quantity: str, res: Dict[str, Any]) -> Dict[str, Any]:
    e = OrderedDict(kind=kind, mode=mode, label=a['label'], num_tasks=a['num_tasks'],
                    reference=OrderedDict(label=b['label'], num_tasks=b['num_tasks']),
                    quantity=quantity)
    e.update(res)
    return e


def _invert(res: Dict[str, Any]) -> Dict[str, Any]:
    """Throughput ratio from a latency ratio (the interval and quantiles swap ends)."""
    out = dict(res, median=1.0 / res['median'])
    if res.get('ci95'):
        out['ci95'] = [1.0 / res['ci95'][1], 1.0 / res['ci95'][0]]
    if res.get('p10') is not None:
        out['p10'], out['p90'] = 1.0 / res['p90'], 1.0 / res['p10']
    return out


def paired_ratios(records: List[Dict[str, Any]], schedule: str = 'interleaved',
                  seed: int = 0) -> List[Dict[str, Any]]:
    """Every ratio the docs quote, as medians of same-round ratios with bootstrap CIs.

    Kinds: ``t_scaling`` (each T against the smallest T of the config: ``throughput`` =
    thr(T) / thr(T0), ``latency`` = lat(T) / lat(T0) and ``cpu_time`` = this process's CPU
    time per iteration, T against T0: the work without the waiting for a CPU a loaded
    machine adds to the wall time), ``backbone_part`` (time inside
    ``model.backbone``, T against T0), ``vs_backbone`` (latency of each point / the bare
    backbone's), ``method`` (latency of config a / config b at the same T, for every
    pair in config order).
    """
    pairing = 'same-round' if schedule == 'interleaved' else 'sequential'
    labels = list(dict.fromkeys(r['label'] for r in records if r['label'] != BACKBONE_ALONE))
    out: List[Dict[str, Any]] = []
    base = _get(records, BACKBONE_ALONE, None, 'infer')
    for mode in TIMED_MODES:
        for label in labels:
            ts = sorted({r['num_tasks'] for r in records
                         if r['label'] == label and r['mode'] == mode and _ok(r)})
            if not ts:
                continue
            ref = _get(records, label, ts[0], mode)
            for t in ts:
                rec = _get(records, label, t, mode)
                if t != ts[0]:
                    lat = _ratio(rec, ref, 'rounds_ms', pairing, seed)
                    if lat is not None:
                        out.append(_entry('t_scaling', mode, rec, ref, 'latency', lat))
                        out.append(_entry('t_scaling', mode, rec, ref, 'throughput', _invert(lat)))
                    cpu = _ratio(rec, ref, 'cpu_rounds_ms', pairing, seed)
                    if cpu is not None:
                        out.append(_entry('t_scaling', mode, rec, ref, 'cpu_time', cpu))
                    bb = _ratio(rec, ref, 'backbone_rounds_ms', pairing, seed)
                    if bb is not None:
                        out.append(_entry('backbone_part', mode, rec, ref, 'latency', bb))
                if mode == 'infer' and base is not None:
                    res = _ratio(rec, base, 'rounds_ms', pairing, seed)
                    if res is not None:
                        out.append(_entry('vs_backbone', mode, rec, base, 'latency', res))
        for i, la in enumerate(labels):
            for lb in labels[i + 1:]:
                for r in records:
                    if r['label'] != la or r['mode'] != mode or not _ok(r):
                        continue
                    other = _get(records, lb, r['num_tasks'], mode)
                    if other is not None:
                        res = _ratio(r, other, 'rounds_ms', pairing, seed)
                        if res is not None:
                            out.append(_entry('method', mode, r, other, 'latency', res))
    return out


def find_ratio(paired: List[Dict[str, Any]], kind: str, mode: str, label: str,
               num_tasks: Optional[int], quantity: str = 'latency',
               reference: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The entry of :func:`paired_ratios` with these fields (None if absent)."""
    for e in paired:
        if (e['kind'] == kind and e['mode'] == mode and e['label'] == label
                and e['num_tasks'] == num_tasks and e['quantity'] == quantity
                and (reference is None or e['reference']['label'] == reference)):
            return e
    return None


# --------------------------------------------------------------------------- summary
def summarize(report: Union[Dict[str, Any], List[Dict[str, Any]]]) -> Dict[str, Any]:
    """Per-config ratios, the paired ratios and the cost targets of a report (or of a
    list of records)."""
    if isinstance(report, dict):
        records = report['results']
        schedule = (report.get('schedule') or {}).get('kind') or \
            (report.get('settings') or {}).get('schedule', 'sequential')
        seed = (report.get('settings') or {}).get('seed', 0)
    else:
        records, schedule, seed = report, 'interleaved', 0
    paired = paired_ratios(records, schedule, seed)
    per_label: Dict[str, Any] = OrderedDict()
    labels = [r['label'] for r in records if r['label'] != BACKBONE_ALONE]
    for label in dict.fromkeys(labels):
        recs = [r for r in records if r['label'] == label]
        entry: Dict[str, Any] = OrderedDict(method=recs[0].get('method'))
        flops = {r['num_tasks']: r['flops'] for r in recs if r.get('flops')}
        if flops:
            t0 = min(flops)
            entry['backbone_flops_ratio'] = {t: flops[t]['backbone'] / flops[t0]['backbone']
                                             for t in sorted(flops)}
            entry['total_flops_ratio'] = {t: flops[t]['total'] / flops[t0]['total']
                                          for t in sorted(flops)}
        for mode in TIMED_MODES:
            ok = sorted(r['num_tasks'] for r in recs if r['mode'] == mode and _ok(r))
            if not ok:
                continue
            thr, ci = {ok[0]: 1.0}, {ok[0]: [1.0, 1.0]}
            for t in ok[1:]:
                e = find_ratio(paired, 't_scaling', mode, label, t, 'throughput')
                if e is not None:
                    thr[t], ci[t] = e['median'], e['ci95']
            entry[f'{mode}_throughput_ratio'] = thr
            entry[f'{mode}_throughput_ratio_ci95'] = ci
            mems = {r['num_tasks']: (r.get('memory') or {}).get('peak_mb')
                    for r in recs if r['mode'] == mode and _ok(r)}
            mems = {t: v for t, v in mems.items() if isinstance(v, (int, float)) and v == v}
            if ok[0] in mems:
                entry[f'{mode}_peak_mem_ratio'] = {t: mems[t] / mems[ok[0]] for t in sorted(mems)}
            if mode == 'infer':
                bb = {t: find_ratio(paired, 'backbone_part', mode, label, t) for t in ok[1:]}
                if any(bb.values()):
                    entry['infer_backbone_time_ratio'] = {t: e['median'] for t, e in bb.items()
                                                          if e is not None}
        params = {r['num_tasks']: r['params'] for r in recs if r.get('params')}
        if len(params) >= 2:
            lo, hi = min(params), max(params)
            entry['trainable_params_per_added_task'] = (
                (params[hi]['trainable'] - params[lo]['trainable']) / (hi - lo))
            entry['backbone_trainable_params_per_added_task'] = (
                (params[hi]['backbone_trainable'] - params[lo]['backbone_trainable']) / (hi - lo))
        entry['num_tasks'] = sorted({r['num_tasks'] for r in recs})
        entry['errors'] = [f"T={r['num_tasks']} {r['mode']}: {r['error']}"
                           for r in recs if r.get('error')]
        per_label[label] = entry
    return OrderedDict(per_config=per_label, paired=paired,
                       targets=evaluate_targets(records, paired))


def _verdict(entry: Dict[str, Any], value: float, ci, threshold: float, higher: bool) -> None:
    met = value >= threshold if higher else value <= threshold
    entry.update(value=value, ci95=ci, status='met' if met else 'not met')
    if ci:
        lo_ok = ci[0] >= threshold if higher else ci[0] <= threshold
        hi_ok = ci[1] >= threshold if higher else ci[1] <= threshold
        entry['ci_verdict'] = ('the whole CI meets it' if lo_ok and hi_ok else
                               'the whole CI misses it' if not (lo_ok or hi_ok) else
                               'the CI straddles the threshold')


def evaluate_targets(records: List[Dict[str, Any]], paired: List[Dict[str, Any]]
                     ) -> List[Dict[str, Any]]:
    """The cost targets for every VMT-type config of the run.

    Each entry: ``id``, ``target``, ``label``, ``value``, ``ci95``, ``threshold``,
    ``status`` ('met' | 'not met' | 'not measured'), ``ci_verdict`` and ``note``.
    """
    out: List[Dict[str, Any]] = []
    vmt = OrderedDict((r['label'], r['method']) for r in records if r.get('method') in VMT_METHODS)
    ft_label = next((r['label'] for r in records if r.get('method') == 'FullFineTune'), None)
    for label in vmt:
        recs = [r for r in records if r['label'] == label]
        size, dev = recs[0]['img_size'], recs[0]['device']
        fl = {r['num_tasks']: r['flops'] for r in recs if r.get('flops')}
        e = OrderedDict(id='flops_t16', target='backbone+adapter FLOPs(T=16) <= 1.05 x FLOPs(T=1)',
                        label=label, threshold=TARGETS['flops_t16'], value=None, ci95=None,
                        status='not measured', note=f'counted, img_size {size}')
        if 1 in fl and 16 in fl:
            _verdict(e, fl[16]['backbone'] / fl[1]['backbone'], None, e['threshold'], False)
        out.append(e)
        inf = next((r for r in recs if r['mode'] == 'infer'), None)
        fwd = inf.get('infer_forward') if inf else None
        e = OrderedDict(id='infer_t8', target='inference throughput(T=8) >= 0.9 x throughput(T=1)',
                        label=label, threshold=TARGETS['infer_t8'], value=None, ci95=None,
                        status='not measured',
                        note=f'paired median, img_size {size} (stated at 448), device {dev}, '
                             f'forward {fwd}')
        r8 = find_ratio(paired, 't_scaling', 'infer', label, 8, 'throughput')
        if r8 is not None and r8['reference']['num_tasks'] == 1:
            _verdict(e, r8['median'], r8.get('ci95'), e['threshold'], True)
            bb = find_ratio(paired, 'backbone_part', 'infer', label, 8)
            if bb is not None:
                e['backbone_only_ratio'] = 1.0 / bb['median']
        out.append(e)
        e = OrderedDict(id='train_t8', target='training step time(T=8) <= 1.15 x time(T=1)',
                        label=label, threshold=TARGETS['train_t8'], value=None, ci95=None,
                        status='not measured', note=f'paired median, img_size {size}, device {dev}')
        r8 = find_ratio(paired, 't_scaling', 'train', label, 8, 'latency')
        if r8 is not None and r8['reference']['num_tasks'] == 1:
            _verdict(e, r8['median'], r8.get('ci95'), e['threshold'], False)
        out.append(e)
        times = {}
        mems = {}
        for r in recs:
            if r['mode'] != 'train' or not _ok(r) or ft_label is None:
                continue
            res = find_ratio(paired, 'method', 'train', label, r['num_tasks'], reference=ft_label)
            if res is None:  # FullFT listed before this config: the entry is the other way
                inv = find_ratio(paired, 'method', 'train', ft_label, r['num_tasks'],
                                 reference=label)
                res = _invert(inv) if inv is not None else None
            if res is not None:
                times[r['num_tasks']] = res
            ft = _get(records, ft_label, r['num_tasks'], 'train')
            pm, pf = (r.get('memory') or {}).get('peak_mb'), (ft.get('memory') or {}).get('peak_mb')
            if isinstance(pm, float) and isinstance(pf, float) and pm == pm and pf == pf:
                mems[r['num_tasks']] = pm / pf
        e = OrderedDict(id='train_vs_ft_time', target='training step time < multi-task full FT '
                        '(same T and batch)', label=label, threshold=1.0,
                        value={t: v['median'] for t, v in times.items()} or None,
                        ci95={t: v.get('ci95') for t, v in times.items()} or None,
                        status='not measured', note='paired median ratio VMT / FullFT per T')
        if times:
            e['status'] = 'met' if all(v['median'] < 1.0 for v in times.values()) else 'not met'
        out.append(e)
        e = OrderedDict(id='train_vs_ft_memory', target='training step peak memory < multi-task '
                        'full FT', label=label, threshold=1.0, value=mems or None, ci95=None,
                        status='not measured', note='peak memory ratio VMT / FullFT per T')
        if mems:
            e['status'] = 'met' if all(v < 1.0 for v in mems.values()) else 'not met'
        out.append(e)
    return out
