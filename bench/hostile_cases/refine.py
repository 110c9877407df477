"""The refine experiment: `experiment refine` flags, runs and model files, and RefineConfig / refine."""

from __future__ import annotations

from pathlib import Path

from ._table import PRE_TOOLS, Table, _json_at


CHECKS = {
    "refine ok": _json_at("refine-ok/results.json", lambda d: True, "JSON"),
    "refine model-file": _json_at("refine-mf/results.json", lambda d: True, "JSON"),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _refine(t)
    _api(t)


def _refine(t: Table) -> None:
    """`experiment refine`."""
    ws, cli, out, run, im, B2, mf, good = t.ws, t.cli, t.out, t.run, t.images, t.bad_runs2, t.models, t.good
    slow, stuck = t.slow, t.stuck
    fast = ["--train-limit", "100", "--test-limit", "50", "--seeds", "0", "--variants", "top", "--steps", "1",
            "--eval-every", "1", "--k", "1", "--bn", "frozen", "--bn-images", "20"]

    def refine(cid, flags, rundir=run, auto_out=True, **kw):
        kw.setdefault("timeout", slow)
        o = [] if "--out" in flags or not auto_out else ["--out", f"{out}/refine-x"]
        cli("refine", "refine " + cid, ["experiment", "refine", *([rundir] if rundir else []), *fast, *o, *flags],
            **kw)

    for flags in (["--layer", "bogus"], ["--layer", "relu1"], ["--layer", "fc"], ["--layer", "Conv2d"],
                  ["--layer", ""], ["--layer", " "], ["--response", "bogus"], ["--k", "0"], ["--k", "-1"],
                  ["--seeds", ""], ["--seeds", ","], ["--seeds", "abc"], ["--seeds", "0,0"],
                  ["--seeds", "99999999999999999999999"], ["--lr", "nan"], ["--lr", "0"], ["--lr", "1e308"],
                  ["--momentum", "1"], ["--angle", "inf"], ["--epochs", "0"], ["--steps", "0"],
                  ["--eval-every", "0"], ["--variants", "bogus"], ["--variants", ""], ["--bn", "bogus"],
                  ["--params", "bogus"], ["--bn-images", "0"], ["--batch-size", "0"], ["--threads", "0"],
                  ["--train-limit", "-1"], ["--out", "/proc/forbidden"], ["--out", str(im / "ok.png")]):
        refine(" ".join(Path(f).name if "/" in f else f for f in flags) if any(flags[1:]) else f"{flags[0]} ''",
               flags)
    refine("--layer 3 (a 0.1 name)", ["--layer", "3"], check="hint")
    refine("--response conv1 (before --layer conv3)", ["--layer", "conv3", "--response", "conv1"])
    refine("--k 1000 (more than the 100 images)", ["--k", "1000"], check="either")
    refine("--train-limit 5 (fewer than the classes)", ["--train-limit", "5"], check="either")
    refine("--seeds -1", ["--seeds", "-1"], check="either")
    refine("--threads 100000", ["--threads", "100000"], check="either")
    for bad in ("/nonexistent", str(im / "ok.png"), str(B2 / "weights_missing"),
                str(ws / "runs_bad" / "weights_pickle"), str(ws / "runs_bad" / "meta_fifo")):
        refine(f"run:{Path(bad).name}", [], rundir=bad, timeout=stuck)
    refine("--model-file and RUN", good)
    refine("--model-file without --out", [*good, "--layer", "conv1"], rundir=None, auto_out=False)
    refine("--model-file NoParams", ["--model-file", f"{mf}:NoParams", "--layer", "relu1", "--out", f"{out}/rmf"],
           rundir=None)
    refine("--model-file Broken", ["--model-file", f"{mf}:Broken", "--out", f"{out}/rmf"], rundir=None)
    for flag, val in (("--mean", "nan"), ("--mean", "abc"), ("--std", "0"), ("--std", "-1"), ("--dataset", "imagenet")):
        refine(f"--model-file {flag} {val}", [*good, "--layer", "conv1", "--out", f"{out}/rmf", flag, val], rundir=None)
    refine("(sanity)", ["--out", f"{out}/refine-ok"], expect="ok", check="refine ok")
    refine("--model-file Good (sanity)", [*good, "--layer", "conv1", "--out", f"{out}/refine-mf"], rundir=None,
           expect="ok", check="refine model-file")


def _api(t: Table) -> None:
    """The Python API: 'api2' cases."""
    py, slow = t.py, t.slow
    pre = PRE_TOOLS
    api = {
        "RefineConfig(k=0)": "result = RefineConfig(k=0)",
        "RefineConfig(k=True)": "result = RefineConfig(k=True)",
        "RefineConfig(seeds='0,1')": "result = RefineConfig(seeds='0,1')",
        "RefineConfig(seeds=[])": "result = RefineConfig(seeds=[])",
        "RefineConfig(variants='top')": "result = RefineConfig(variants='top')",
        "RefineConfig(lr=nan)": "result = RefineConfig(lr=float('nan'))",
        "RefineConfig(layer=5)": "result = refine(WS/'run', RefineConfig(layer=5, **FAST))",
        "refine(numpy array)": "result = refine(np.zeros(3), RefineConfig(**FAST))",
        "refine(model without datasets)": "result = refine(run.model, RefineConfig(**FAST))",
        "refine(tensors as datasets)": "result = refine(run.model, RefineConfig(**FAST), train=ds.images, "
                                       "test=ds.images, normalization=run.normalization)",
        "refine(config as dict)": "result = refine(WS/'run', dict(FAST))",
        "refine(run, layer='relu1')": "result = refine(WS/'run', RefineConfig(layer='relu1', **FAST))",
    }
    either = ('refine(config as dict)',)
    for name, code in api.items():
        py("api2", name, pre + code, timeout=slow, check="either" if name in either else None)
