"""Throughput of :class:`mtdense.apis.MTDenseInferencer` (img/s) at several batch sizes.

The same images go through the Inferencer once per batch size per round; the batch sizes
are timed in a new shuffled order every round (after one warm-up pass each), so load that
changes during the run hits every batch size alike. Reported per batch size: median
[p10, p90] img/s over rounds, and the median of the same-round throughput ratios to the
first batch size with its bootstrap CI (the profiler's statistics,
:func:`mtdense.analysis.stats.paired_ratio`). Images are JPEG files written once to a
temporary folder (decoding, EXIF handling and the test pipeline are part of what is timed;
writing outputs is not). Weights are the
config's initialisation (throughput does not depend on the weights' values).

    python benchmarks/inferencer_throughput.py vmt/vmt_swin-t_pascal-mt --size 375 500 \
        --num-images 16 --batch-sizes 1 8 --rounds 5 --out benchmarks/results/<dir>/inferencer
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from typing import Dict, List

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='config file or zoo name')
    p.add_argument('--size', type=int, nargs=2, default=(375, 500), metavar=('H', 'W'),
                   help='image size (PASCAL-Context photos are about 375 x 500)')
    p.add_argument('--num-images', type=int, default=16)
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='key=value overrides (e.g. model.backbone.checkpoint=None)')
    p.add_argument('--out', default=None, help='folder for inferencer_throughput.json')
    return p.parse_args(argv)


def _write_images(folder: str, n: int, size) -> List[str]:
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        path = os.path.join(folder, f'img_{i:03d}.jpg')
        cv2.imwrite(path, img)
        paths.append(path)
    return paths


def main(argv=None) -> Dict:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from mtdense.analysis import machine_info
    from mtdense.analysis.measure import quantile
    from mtdense.analysis.stats import paired_ratio
    from mtdense.apis import MTDenseInferencer

    inferencer = MTDenseInferencer(args.config, weights=None, cfg_options=args.cfg_options)
    times: Dict[int, List[float]] = {b: [] for b in args.batch_sizes}
    loads: List[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_images(tmp, args.num_images, args.size)
        for b in args.batch_sizes:  # warm-up: allocator, pipelines, first-call costs
            inferencer(paths[:b], batch_size=b, save_panels=False)
        order = list(args.batch_sizes)
        rng = random.Random(0)
        for r in range(args.rounds):
            rng.shuffle(order)
            loads.append(os.getloadavg()[0])
            for b in order:
                t0 = time.perf_counter()
                inferencer(paths, batch_size=b, save_panels=False)  # no_grad inside
                times[b].append(time.perf_counter() - t0)
            print(f'round {r + 1}/{args.rounds}: ' + ', '.join(
                f'batch {b}: {args.num_images / times[b][-1]:.2f} img/s' for b in args.batch_sizes),
                flush=True)
    ref = args.batch_sizes[0]
    result = dict(
        reference_batch_size=ref, config=args.config, size=list(args.size),
        num_images=args.num_images, rounds=args.rounds, threads=args.threads,
        tasks=inferencer.tasks, machine=machine_info('cpu'), load_avg_1min_per_round=loads,
        batch_sizes={})
    for b in args.batch_sizes:
        ips = sorted(args.num_images / t for t in times[b])
        ratio = paired_ratio(times[ref], times[b])  # same-round throughput(b) / throughput(ref)
        result['batch_sizes'][str(b)] = dict(
            img_per_s_median=statistics.median(ips), img_per_s_p10=quantile(ips, 0.1),
            img_per_s_p90=quantile(ips, 0.9), seconds_per_round=times[b],
            throughput_ratio_median=ratio['median'], throughput_ratio_ci95=ratio['ci95'])
    for b, r in result['batch_sizes'].items():
        print(f'batch {b}: {r["img_per_s_median"]:.2f} img/s [{r["img_per_s_p10"]:.2f}, '
              f'{r["img_per_s_p90"]:.2f}], x{r["throughput_ratio_median"]:.3f} vs batch {ref}')
    print(f'load average (1 min) per round: {", ".join(f"{x:.2f}" for x in loads)}')
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'inferencer_throughput.json'), 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
