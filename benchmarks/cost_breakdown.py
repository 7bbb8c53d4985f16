"""Where the cost that grows with T goes: CPU time per part of the predict path or of the
training step, for several T of one config, interleaved round by round (shuffled order).

Parts, predict (``test_step`` under ``inference_mode``): ``preprocess``, ``backbone``
(backbone + PETL method), ``heads`` (task-batched heads), ``upsample`` (each task to the
input size), ``postprocess`` (crop, un-flip, resize, activation, argmax), ``other``.
Training (``train_step``, fused AdamW): forward ``backbone`` / ``heads`` / ``upsample`` /
``losses``, backward split where the gradient reaches the upsampled outputs, the head
outputs and the backbone features (``bwd_losses``, ``bwd_upsample``, ``bwd_heads``,
``bwd_backbone``), ``optimizer``. CPU time (``time.process_time``) is used rather than
wall time: on a loaded machine it leaves out the wait for a CPU. Minor page faults per
iteration are reported beside it.

    python benchmarks/cost_breakdown.py --mode predict --img-size 448 --num-tasks 1 8 \\
        --rounds 15 --out benchmarks/results/DIR/breakdown_predict_448.json
"""
from __future__ import annotations

import argparse
import functools
import json
import random
import resource
import statistics
import sys
import time
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parents[1]
clock = time.process_time


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Parts:
    """CPU seconds of the wrapped calls of one iteration, and marks set by gradient hooks."""

    def __init__(self) -> None:
        self.cur: Dict[str, float] = defaultdict(float)
        self.marks: Dict[str, float] = {}

    def _mark(self, key: str, grad) -> None:
        """Gradient hook: the first time the gradient reaches ``key`` (returns None)."""
        self.marks.setdefault(key, clock())

    def wrap(self, name: str, fn, hook_outputs: str = ''):
        def wrapped(*args, **kwargs):
            t0 = clock()
            out = fn(*args, **kwargs)
            self.cur[name] += clock() - t0
            if hook_outputs and torch.is_grad_enabled():
                for t in _tensors(out):
                    if t.requires_grad:
                        t.register_hook(functools.partial(self._mark, hook_outputs))
            return out
        return wrapped


def _tensors(out) -> List[torch.Tensor]:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=str(REPO / 'configs/_base_/models/swin_t_mmseg_vmt.py'))
    p.add_argument('--mode', choices=['predict', 'train'], default='predict')
    p.add_argument('--img-size', type=int, default=448)
    p.add_argument('--num-tasks', nargs='+', type=int, default=[1, 8])
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--num-classes', type=int, default=21)
    p.add_argument('--out', default=None, help='JSON file for the result')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import mtdense  # noqa: F401
    import mtdense.models.multitask_model as mm
    from mmengine.optim import OptimWrapper
    from mtdense.analysis import machine_info
    from mtdense.analysis.build import (build_model, load_model_cfg, make_infer_data,
                                        make_optimizer, make_task_list, make_train_data)
    from mtdense.analysis.machine import loadavg

    parts = Parts()
    train = args.mode == 'train'
    mm.task_batched_heads_forward = parts.wrap('heads', mm.task_batched_heads_forward,
                                               'bwd_heads_start' if train else '')
    M = mm.MultiTaskDenseModel
    M._resize_to = parts.wrap('upsample', M._resize_to, 'bwd_upsample_start' if train else '')
    if hasattr(M, '_resize_task'):
        M._resize_task = parts.wrap('upsample', M._resize_task)
    M._set_prediction = parts.wrap('postprocess', M._set_prediction)
    M._unflip = staticmethod(parts.wrap('postprocess', M._unflip))
    cfg = load_model_cfg(args.config, args.num_classes)
    units = {}
    for T in args.num_tasks:
        tasks = make_task_list(cfg['tasks'], T)
        model = build_model(cfg, tasks, 0)
        model.backbone.forward = parts.wrap('backbone', model.backbone.forward,
                                            'bwd_backbone_start' if train else '')
        model.data_preprocessor.forward = parts.wrap('preprocess', model.data_preprocessor.forward)
        if train:
            for t in tasks:
                model.losses[t].forward = parts.wrap('losses', model.losses[t].forward)
            optim = OptimWrapper(make_optimizer([q for q in model.parameters() if q.requires_grad],
                                                'fused'))
            data = make_train_data(tasks, dict(model.num_classes), 1, args.img_size, 0)
            units[T] = (model.train(), optim, data)
        else:
            units[T] = (model.eval(), None, make_infer_data(1, args.img_size, 0))

    def step(T: int) -> Dict[str, float]:
        model, optim, data = units[T]
        parts.cur.clear()
        parts.marks.clear()
        f0, t0 = _faults(), clock()
        if not train:
            with torch.inference_mode():
                model.test_step(data)
            out = dict(parts.cur)
            out['other'] = clock() - t0 - sum(out.values())
        else:
            d = model.data_preprocessor(data, True)
            losses = model._run_forward(d, mode='loss')
            loss, _ = model.parse_losses(losses)
            t1 = clock()
            optim.backward(loss)
            t2 = clock()
            optim.step()
            optim.zero_grad()
            t3 = clock()
            out = dict(parts.cur)
            mk = parts.marks
            up, hd, bb = (mk.get(k, t1) for k in ('bwd_upsample_start', 'bwd_heads_start',
                                                  'bwd_backbone_start'))
            out.update(forward_other=t1 - t0 - sum(parts.cur.values()), bwd_losses=up - t1,
                       bwd_upsample=hd - up, bwd_heads=bb - hd, bwd_backbone=t2 - bb,
                       optimizer=t3 - t2)
        out['total'] = clock() - t0
        out['page_faults'] = float(_faults() - f0)
        return out

    for T in args.num_tasks:
        for _ in range(args.warmup):
            step(T)
    samples: Dict[int, List[Dict[str, float]]] = {T: [] for T in args.num_tasks}
    rng = random.Random(0)
    loads = []
    for _ in range(args.rounds):
        loads.append((loadavg() or [None])[0])
        order = list(args.num_tasks)
        rng.shuffle(order)
        for T in order:
            samples[T].append(step(T))
    keys = list(dict.fromkeys(k for T in samples for s in samples[T] for k in s))
    t0 = args.num_tasks[0]
    med = {T: {k: statistics.median(s.get(k, 0.0) for s in samples[T]) for k in keys}
           for T in args.num_tasks}
    base = med[t0]['total']
    result = OrderedDict(
        tool='benchmarks/cost_breakdown.py', config=args.config, mode=args.mode,
        img_size=args.img_size, num_tasks=args.num_tasks, rounds=args.rounds, threads=1,
        clock='process_time (CPU seconds of this process)', machine=machine_info('cpu'),
        loadavg_1m=loads,
        median_ms={T: {k: (v if k == 'page_faults' else 1000 * v) for k, v in med[T].items()}
                   for T in args.num_tasks},
        extra_vs_first_T={T: {k: OrderedDict(ms=1000 * (med[T][k] - med[t0][k]),
                                             share_of_total_at_first_T=(med[T][k] - med[t0][k])
                                             / base)
                              for k in keys if k != 'page_faults'}
                          for T in args.num_tasks[1:]},
        # same-round paired ratio of the total CPU time
        total_ratio_median={T: statistics.median(a['total'] / b['total'] for a, b in
                                                 zip(samples[T], samples[t0]))
                            for T in args.num_tasks[1:]})
    lines = ['| part | ' + ' | '.join(f'T={T} ms' for T in args.num_tasks) + ' | ' +
             ' | '.join(f'+ at T={T} (share of T={t0} total)' for T in args.num_tasks[1:]) + ' |',
             '|---|' + '---|' * (2 * len(args.num_tasks) - 1)]
    for k in keys:
        cells = [f"{med[T][k]:.0f}" if k == 'page_faults' else f'{1000 * med[T][k]:.1f}'
                 for T in args.num_tasks]
        if k != 'page_faults':
            cells += [f'{1000 * (med[T][k] - med[t0][k]):+.1f} '
                      f'({100 * (med[T][k] - med[t0][k]) / base:+.1f} %)'
                      for T in args.num_tasks[1:]]
        else:
            cells += [''] * (len(args.num_tasks) - 1)
        lines.append(f'| {k} | ' + ' | '.join(cells) + ' |')
    table = '\n'.join(lines)
    print(table)
    print('paired total CPU-time ratio vs T=%d: %s; load 1m %s..%s' % (
        t0, {T: round(v, 3) for T, v in result['total_ratio_median'].items()},
        min(x for x in loads if x is not None), max(x for x in loads if x is not None)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        result['table_md'] = table
        Path(args.out).write_text(json.dumps(result, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
