"""The refine experiment's curves against steps (mean ± std over seeds): drawn for ``curves.png`` and for a
:class:`~convscope.experiments.result.RefineResult` shown in a notebook."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ..viz import new_figure

if TYPE_CHECKING:   # RefineResult's display draws here: no import back at run time
    from .result import RefineResult

COLOURS = {"maximize": "#d62728", "maximize-random": "#e377c2", "maximize-representative": "#8c564b",
           "maximize-bottom": "#9467bd", "rotate": "#17becf", "top": "#ff7f0e", "random": "#7f7f7f",
           "representative": "#2ca02c", "full": "#1f77b4", "full-own": "#bcbd22"}
BN_LABEL = {"frozen": "BN statistics frozen", "reestimate": "BN statistics re-estimated on training data"}


def _series(res: RefineResult, variant: str, bn: str, key: str, relative: bool = False):
    runs = res.runs_of(variant)
    steps = np.array([row["step"] for row in runs[0].rows])
    vals = np.array([[row["bn"][bn][key] for row in r.rows] for r in runs], dtype=np.float64)  # (seeds, points)
    if relative:
        vals = vals / vals[:, :1] - 1.0
    std = vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(vals.shape[1])
    return steps, vals.mean(0), std


def curves_figure(res: RefineResult) -> Figure:
    """Rows: BN treatments. Columns: test accuracy, chosen-set accuracy, response gain on the kernels' top-k
    training (solid) and test (dashed) images. Lines: mean over seeds; bands: ± one standard deviation."""
    modes = list(res.runs[0].rows[0]["bn"])
    fig = new_figure(15, 3.6 * len(modes) + 0.6)
    axes = fig.subplots(len(modes), 3, squeeze=False)
    for i, bn in enumerate(modes):
        for v in res.config.variants:
            for j, (key, rel, style) in enumerate((("test_accuracy", False, "-"), ("chosen_accuracy", False, "-"),
                                                   ("response_topk_train", True, "-"),
                                                   ("response_topk_test", True, "--"))):
                ax = axes[i][min(j, 2)]
                steps, mean, std = _series(res, v, bn, key, rel)
                scale = 100.0
                label = v if j != 3 else None
                ax.plot(steps, scale * mean, style, color=COLOURS[v], label=label, lw=1.6)
                ax.fill_between(steps, scale * (mean - std), scale * (mean + std), color=COLOURS[v], alpha=0.18, lw=0)
        axes[i][0].set_ylabel(f"{BN_LABEL[bn]}\ntest accuracy (%)", fontsize=9)
        axes[i][1].set_ylabel("accuracy on the chosen images (%)", fontsize=9)
        axes[i][2].set_ylabel("response change (%)\nsolid: top-k train, dashed: top-k test", fontsize=9)
        for ax in axes[i]:
            ax.grid(alpha=0.3)
            ax.set_xlabel("step")
    axes[0][0].legend(fontsize=8)
    n = len(res.config.seeds)
    fig.suptitle(f"refine {res.layer} (response: {res.response}, top {res.config.k}) on {res.data['dataset']}: "
                 f"mean ± std over {res.model_count()} model(s) x {n} seed(s)", fontsize=11)
    return fig
