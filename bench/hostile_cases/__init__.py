"""The hostile sweep's case table (bench/hostile_sweep.py), one module per unit: what each case runs, what it
should do, and the checks and scenarios that judge it. The workspace the cases run against is built by
bench/hostile_workspace.py.

    data        data list/show, --data-dir contents, class folders; the readers' Python API
    predict     image files given to predict
    runs        broken run directories read by predict, eval, layers, load_run
    train       train flags, config files, kills and concurrency, --nproc
    inspection  layers, sparsity, topk, features, filters, rf, edges (--kernel), layer-name arguments
    matrix      the matrix command and the conv-matrix functions
    visualize   visualize and project
    explain     explain and explain --audit
    refine      experiment refine
    web         report and serve
    models      user models off the output contract; non-finite values, API arguments, work bounds (#28)
    writes      full disks, files in the way, closed pipes; meaningless training settings, seeds, dup keys
    plausible   training settings against the data's image size and classes; unusual settings warned; config
                values named by their file (#28)
    open28      the findings of #28 open after its third round: tune seed and folder, bounds, replaced files,
                half-written sets, model-file neighbours, blank images, short sweeps (areas open-*)
    attack3a    the third attack, half a: serve's run lock and JSON errors, endless downloads, run files' digests,
                sizes and model arguments (areas attack3-serve, attack3-download, attack3-runs)

A case's ``area`` is the label the sweep's results are grouped by (``api`` and ``api2``: the Python API);
its id is unique across the table.
"""

from __future__ import annotations

from pathlib import Path

from hostile_workspace import make_workspace

from . import (data, explain, inspection, matrix, models, open28, plausible, predict, refine, runs, train, visualize,
               web, writes)
from ._table import CHECKS as _SHARED_CHECKS
from ._table import Case, Table

__all__ = ["CHECKS", "SCENARIOS", "UNITS", "Case", "build_cases", "make_workspace"]

UNITS = (data, predict, runs, train, inspection, matrix, visualize, explain, refine, web, models, writes, plausible,
         open28)

# the third attack's findings (#28): half a (serve, downloads, run files; areas attack3-*) and half b
# (commands and the Python API; areas attack3-cmd-*)
from . import attack3a, attack3b  # noqa: E402

UNITS += (attack3a, attack3b)


def _merged_checks() -> dict:
    checks = dict(_SHARED_CHECKS)
    for unit in UNITS:
        for name, fn in getattr(unit, "CHECKS", {}).items():
            if name in checks:
                raise ValueError(f"check {name!r} defined twice (in {unit.__name__} and before)")
            checks[name] = fn
    return checks


CHECKS = _merged_checks()
SCENARIOS = train.SCENARIOS


def build_cases(ws: Path, timeout: float) -> list[Case]:
    table = Table(ws, timeout)
    for unit in UNITS:
        unit.add_cases(table)
    return table.cases
