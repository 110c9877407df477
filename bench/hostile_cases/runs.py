"""Broken run directories (bench/hostile_workspace.py's runs_bad) read by predict, eval, layers and load_run."""

from __future__ import annotations


from ._table import PRE_CORE, Table


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _rundir(t)
    _api(t)


def _rundir(t: Table) -> None:
    """predict / eval / layers on each broken run, eval on things that are not runs, load_run."""
    ws, cli, py, out, im, C = t.ws, t.cli, t.py, t.out, t.images, t.configs
    for bad in sorted(p.name for p in (ws / "runs_bad").iterdir()):
        exp = "ok" if bad == "checkpoint_garbage" else "error"  # a finished run does not need its checkpoint
        cli("rundir", f"predict run:{bad}", ["predict", ws / "runs_bad" / bad, im / "ok.png"], expect=exp)
        cli("rundir", f"eval run:{bad}", ["eval", ws / "runs_bad" / bad], expect=exp)
        cli("rundir", f"layers run:{bad}", ["layers", ws / "runs_bad" / bad, "--out", out], expect=exp)
    for target in ("/nonexistent", str(im / "ok.png"), str(C / "fifo.yaml"), "/dev/zero"):
        cli("rundir", f"eval {target}", ["eval", target])
    py("rundir", "load_run(FIFO dir entry)", "import convscope; result = convscope.load_run(WS/'runs_bad'/'meta_fifo')")
    py("rundir", "load_run(str number)", "import convscope; result = convscope.load_run(5)")


def _api(t: Table) -> None:
    """The Python API: 'api' cases."""
    py = t.py
    pre = PRE_CORE
    api = {
        "load_weights(FIFO)": "from convscope.training.checkpoint import load_weights; "
                              "result = load_weights(WS/'fifo.safetensors')",
        "load_weights(pickle)": "from convscope.training.checkpoint import load_weights; result = "
                                "load_weights(WS/'w.pt')",
        "load_state(garbage)": "from convscope.training.checkpoint import load_state; "
                               "result = load_state(WS/'garbage.safetensors')",
        "load_run(model.json deep)": "result = convscope.load_run(WS/'runs_bad'/'meta_deep')",
    }
    for name, code in api.items():
        py("api", name, pre + code)
