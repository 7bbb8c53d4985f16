"""The PETL picture: Δm versus trainable parameters (log x), one marker per method."""
from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ['plot_delta_m']

_MARKERS = 'osD^vP*Xh<>p'


def plot_delta_m(results: Mapping[str, Any], path: str) -> None:
    """Δm mean ± sample std over seeds (error bars) against the trainable parameters of
    the model (method + heads), log scale; colour by backbone family. Rows without test
    results are left out (named in the title)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in results['rows'] if r['delta_m'].get('mean') is not None and r.get('params')]
    skipped = [r['label'] for r in results['rows'] if r not in rows]
    families = sorted({r['family'] for r in results['rows']})
    colours = {f: plt.get_cmap('tab10')(i) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(9, 6.5))
    shared = {lab for lab in {r['label'] for r in rows}
              if len({r['family'] for r in rows if r['label'] == lab}) > 1}
    for i, r in enumerate(rows):
        dm = r['delta_m']
        err = dm['std'] if dm.get('std') is not None and math.isfinite(dm['std']) else 0.0
        x = r['params']['trainable']
        ax.errorbar([x], [dm['mean']], yerr=[err], fmt=_MARKERS[i % len(_MARKERS)],
                    color=colours[r['family']], ms=8, capsize=4,
                    label=f'{r["label"]} ({r["family"]})')
        # a label used by both families gets its family; alternate the offsets so labels of
        # neighbouring markers overlap less
        text = f'{r["label"]} ({r["family"]})' if r['label'] in shared else r['label']
        ax.annotate(text, (x, dm['mean']), textcoords='offset points',
                    xytext=(6, 5 if i % 2 == 0 else -11), fontsize=8, color=colours[r['family']])
    ax.axhline(0.0, color='grey', lw=0.8, ls='--')
    ax.set_xscale('log')
    ax.set_xlabel('trainable parameters (method + heads, log scale)')
    ax.set_ylabel('Δm vs single-task FT of the same backbone (%)')
    pre = results['preset']
    n = max((r['delta_m'].get('n') or 0) for r in rows) if rows else 0
    title = (f'preset {pre["name"]}: test split, mean ± std over {n} seeds, '
             f'{pre["iters"]} iterations')
    if skipped:
        title += f'\nnot shown (no results): {", ".join(skipped)}'
    ax.set_title(title, fontsize=10)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=4,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
