"""A study's results: the table of trials (printed, and saved as results.md and trials.json), Optuna's
optimisation-history and parameter-importance plots as PNG, and the best trial's config as a YAML file that
``convscope train --config`` takes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..runs import rundir as rd
from ..runs.rundir import git_commit
from ..viz.figures import save_figure
from .space import Param
from .storage import optuna_module

RESULTS, TRIALS, BEST, HISTORY, IMPORTANCE = ("results.md", "trials.json", "best.yaml", "history.png",
                                              "importance.png")


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state (complete, pruned, failed, retried as #k, surplus), the validation
    accuracy it was judged on (a pruned trial's: its last reported epoch), the test accuracy (for reference
    only), epochs trained, parameters and run folder."""
    ts = optuna_module().trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried_as = {n: t.number for t in trials for n in t.system_attrs.get("retry_history", [])[-1:]}
    rows = []
    for t in trials:
        state = t.state.name.lower()
        if t.state == ts.FAIL:
            state = "surplus" if t.user_attrs.get("surplus") else (
                f"failed, retried as #{retried_as[t.number]}" if t.number in retried_as else "failed")
        elif t.state == ts.PRUNED and t.user_attrs.get("outcome") == "diverged":
            state = "pruned (diverged)"
        val = t.value if t.state == ts.COMPLETE else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        rows.append({"trial": t.number, "state": state, "val_accuracy": val,
                     "test_accuracy": t.user_attrs.get("test_accuracy") if t.state in (ts.COMPLETE, ts.PRUNED)
                     else None,
                     "epochs": t.user_attrs.get("epochs"), "params": dict(t.params),
                     "retry_of": t.system_attrs.get("failed_trial"), "run_dir": t.user_attrs.get("run_dir")})
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: list[dict[str, Any]], params: tuple[Param, ...], best: int | None) -> str:
    """The trials as a Markdown table (val and test accuracy in %, the best trial marked)."""
    keys = [p.key for p in params]
    head = ["trial", "state", "val acc %", "test acc %", "epochs", *keys, "run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        pct = [f"{100 * r[k]:.2f}" if r[k] is not None else "" for k in ("val_accuracy", "test_accuracy")]
        trial = f"**{r['trial']}** (best)" if r["trial"] == best else str(r["trial"])
        run = Path(r["run_dir"]).name if r["run_dir"] else ""
        # a searched null (``batch_size: [null, 64]``: the default) says null; a blank: not sampled
        values = ["null" if k in r["params"] and r["params"][k] is None else _fmt(r["params"].get(k)) for k in keys]
        cells = [trial, r["state"], *pct, _fmt(r["epochs"]), *values, run]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_config_yaml(study: Any, best: Any, val_note: str) -> str:
    """The best trial's run config (exactly what ran, from its config.json) as YAML, with a header saying where
    it came from and how to retrain it."""
    import yaml

    run_dir = Path(best.user_attrs["run_dir"])
    where = f"run {run_dir}"
    if (run_dir / rd.CONFIG).exists():
        cfg = rd.read_json(run_dir / rd.CONFIG)
    else:   # the trial ran on another machine of a shared study: its base config and its parameters
        from ..training.config import config_from_dict

        base = study.user_attrs.get("convscope", {}).get("base", {})
        cfg = config_from_dict(dict(best.params), config_from_dict(base, source="the study's base config"),
                               source=f"trial {best.number}").to_dict()
        where = f"run {run_dir} on another machine (config rebuilt from the study's base config and the trial's " \
                "parameters)"
    cfg.pop("name", None)   # the retrained run takes its own name
    # the study's thread count, not the share of the CPUs a trial got beside --jobs N-1 others: retrained alone,
    # a run given threads 1 on a 2-CPU machine would take twice as long for nothing
    base = study.user_attrs.get("convscope", {}).get("base", {})
    if isinstance(cfg.get("runtime"), dict) and isinstance(base.get("runtime"), dict):
        cfg["runtime"]["threads"] = base["runtime"].get("threads")
    head = [f"# best trial of study {study.study_name!r}: trial {best.number}, {where}",
            f"# validation accuracy {100 * best.value:.2f}% ({val_note}); test accuracy "
            f"{100 * best.user_attrs.get('test_accuracy', float('nan')):.2f}% (not used for selection)",
            f"# convscope commit {git_commit() or 'unknown'}",
            "# retrain: convscope train --config best.yaml"]
    return "\n".join(head) + "\n" + yaml.safe_dump(cfg, sort_keys=False)


def _plots(study: Any, folder: Path) -> tuple[list[Path], list[str]]:
    """Optuna's optimisation history and parameter importances (fANOVA) as PNG; notes for what could not be
    drawn (importance needs two finished trials that differ)."""
    import matplotlib
    import matplotlib.pyplot as plt

    optuna = optuna_module()
    vis = optuna.visualization.matplotlib
    files, notes = [], []
    for name, draw in ((HISTORY, vis.plot_optimization_history), (IMPORTANCE, vis.plot_param_importances)):
        # Optuna marks its matplotlib backend experimental, and sets pyplot's global style (ggplot): both are
        # kept to these two figures, so later figures of this process look as convscope draws them
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                ax = draw(study)
            except (ValueError, RuntimeError) as e:
                notes.append(f"{name}: not drawn ({e})")
                continue
            try:
                files.append(save_figure(ax.figure, folder / name))
            finally:
                plt.close(ax.figure)
    return files, notes


def write_results(study: Any, folder: Path, params: tuple[Param, ...], val_note: str) -> dict[str, Any]:
    """Write results.md, trials.json, best.yaml and the plots into ``folder``; returns what was written and the
    table: {"table", "files", "notes", "best"}."""
    ts = optuna_module().trial.TrialState
    rows = trial_rows(study)
    complete = list(study.get_trials(deepcopy=False, states=(ts.COMPLETE,)))
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    text = table(rows, params, best.number if best else None)
    counts = {s: sum(1 for t in study.get_trials(deepcopy=False) if t.state == getattr(ts, s.upper()))
              for s in ("complete", "pruned", "fail")}
    summary = (f"study {study.study_name!r}: {counts['complete']} complete, {counts['pruned']} pruned"
               + (f", {counts['fail']} failed or surplus (not counted)" if counts["fail"] else "")
               + f"; selected on {val_note}")
    files, notes = [], []
    if best is not None:
        atomic_write_text(folder / BEST, best_config_yaml(study, best, val_note))
        files.append(folder / BEST)
        summary += f"\nbest: trial {best.number}, val {100 * best.value:.2f}%"
        plot_files, notes = _plots(study, folder)
        files += plot_files
    else:
        notes.append("no complete trial: no best config")
    md = (f"# {summary}\n\nconvscope commit {git_commit() or 'unknown'}\n\n{text}\n"
          + "".join(f"\n- {n}" for n in notes) + "\n")
    atomic_write_text(folder / RESULTS, md)
    atomic_write_text(folder / TRIALS, json.dumps(rd.json_safe({"study": study.study_name, "selected_on": val_note,
                                                                 "trials": rows}), indent=2) + "\n")
    files = [folder / RESULTS, folder / TRIALS, *files]
    return {"summary": summary, "table": text, "files": files, "notes": notes,
            "best": best.number if best else None}
