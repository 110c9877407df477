"""Feature visualization and projections: `visualize`, `project` and visualize / project / projections."""

from __future__ import annotations

from pathlib import Path

from ._table import PRE_TOOLS, Table, _finite, _json_at


CHECKS = {
    "vis conv1 4 units": _json_at("vis-ok/visualize-conv1.json",
                                  lambda d: d["channels"] == [0, 1, 2, 3] and _finite(d["values"]), "4 finite units"),
    "vis fc 10 units": _json_at("vis-fc/visualize-fc.json",
                                lambda d: d["channels"] == list(range(10)) and _finite(d["values"]), "10 units"),
    "vis natural": _json_at("vis-nat/visualize-conv2.json",
                            lambda d: d["channels"] == [0, 5] and len(d["natural_values"]) == 2, "2 units + natural"),
    **{f"vis {flag} finite": _json_at(f"vis{flag}/visualize-conv1.json",
                                      lambda d: _finite(d["objective_start"] + d["objective_end"] + d["values"]),
                                      "a finite objective (JSON holds -Infinity / NaN)") for flag in ("--l2", "--tv")},
    "vis class": _json_at("vis-class/visualize-logits.json", lambda d: d["channels"] == [3], "class 3"),
    "vis model-file": _json_at("vis-mf/visualize-conv1.json", lambda d: len(d["channels"]) == 4, "4 units"),
    "project 2x2": _json_at("proj-ok/project-conv1.json",
                            lambda d: d["channels"] == [0, 1] and all(len(r) == 2 for r in d["records"]), "2x2"),
    "project default": _json_at("proj-def/project-conv1.json", lambda d: d["channels"] == [0, 1, 2, 3],
                                "the layer's 4 channels"),
    "project fc": _json_at("proj-fc/project-fc.json", lambda d: d["channels"] == [0], "fc unit 0"),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _visualize(t)
    _project(t)
    _api(t)


def _visualize(t: Table) -> None:
    """`visualize` flags, runs, model files and sanity runs."""
    ws, cli, out, run, im, B2, mf, good = t.ws, t.cli, t.out, t.run, t.images, t.bad_runs2, t.models, t.good
    stuck = t.stuck
    vis = ["visualize", run, "--out", out, "--steps", "2", "--no-natural"]
    for flags in (["--layer", "bogus"], ["--layer", ","], ["--layer", "relu1,relu2"], ["--channels", "0"],
                  ["--layer", "ReLU"], ["--layer", "Conv2d"],
                  ["--layer", "conv1", "--channels", "4"], ["--layer", "conv1", "--channels", "-1"],
                  ["--layer", "conv1", "--channels", ","], ["--layer", "conv1", "--channels", ""],
                  ["--layer", "conv1", "--channels", "3-1"], ["--layer", "conv1", "--channels", "1.5"],
                  ["--layer", "conv1", "--channels", "0-999999999"],
                  ["--class", "10"], ["--class", "-1"], ["--class", "3", "--layer", "conv1"],
                  ["--layer", "conv1", "--steps", "0"], ["--layer", "conv1", "--steps", "-1"],
                  ["--layer", "conv1", "--steps", "abc"], ["--layer", "conv1", "--seed", "-1"],
                  ["--layer", "conv1", "--param", "bogus"], ["--layer", "conv1", "--measure", "bogus"],
                  ["--layer", "conv1", "--tv", "nan"], ["--layer", "conv1", "--l2", "inf"],
                  ["--layer", "conv1", "--blur", "-1"], ["--layer", "conv1", "--show", "-1"],
                  ["--layer", "conv1", "--limit", "-1"]):
        cli("visualize", "visualize " + " ".join(flags or ["(no --layer)"]), [*vis, *flags])
    cli("visualize", "visualize (no --layer)", ["visualize", run, "--out", out, "--steps", "2"])
    cli("visualize", "visualize --layer 3 (a 0.1 name)", [*vis, "--layer", "3"], check="hint")
    for flag in ("--l2", "--tv"):   # finite weights whose penalty overflows: refuse, or keep the objective finite
        cli("visualize", f"visualize {flag} 1e308 (finite, overflows)",
            ["visualize", run, "--out", f"{out}/vis{flag}", "--steps", "2", "--no-natural", "--layer", "conv1", flag,
             "1e308"], check=f"vis {flag} finite")
    cli("visualize", "visualize --out /proc", ["visualize", run, "--out", "/proc/forbidden", "--steps", "2",
                                               "--no-natural", "--layer", "conv1"])
    cli("visualize", "visualize --out is a file", ["visualize", run, "--out", im / "ok.png", "--steps", "2",
                                                   "--no-natural", "--layer", "conv1"])
    for bad in ("weights_missing", "metrics_fifo"):
        cli("visualize", f"visualize run:{bad}", ["visualize", B2 / bad, "--out", out, "--steps", "2",
                                                  "--no-natural", "--layer", "conv1"], timeout=stuck,
            expect="ok" if bad == "metrics_fifo" else "error")   # visualize has no business with the metrics
    cli("visualize", "visualize --dataset folder:fifo", ["visualize", run, "--out", out, "--steps", "2", "--layer",
                                                         "conv1", "--dataset", f"folder:{ws / 'folders' / 'fifo'}",
                                                         "--split", "all"], timeout=stuck)
    for name in ("Broken", "NoParams", "NotModule"):
        cli("visualize", f"visualize model-file {name}", ["visualize", "--model-file", f"{mf}:{name}", "--input-shape",
                                                          "1x28x28", "--out", out, "--steps", "2", "--no-natural",
                                                          "--layer", "relu1"])
    cli("visualize", "visualize conv1 (sanity)", ["visualize", run, "--out", f"{out}/vis-ok", "--steps", "2",
                                                  "--no-natural", "--layer", "conv1"],
        expect="ok", check="vis conv1 4 units")
    cli("visualize", "visualize --layer fc (fully connected)", ["visualize", run, "--out", f"{out}/vis-fc", "--steps",
                                                                "2", "--no-natural", "--layer", "fc"],
        expect="ok", check="vis fc 10 units")
    cli("visualize", "visualize --channels 0,5 with natural", ["visualize", run, "--out", f"{out}/vis-nat", "--steps",
                                                               "2", "--limit", "40", "--layer", "conv2",
                                                               "--channels", "0,5"],
        expect="ok", check="vis natural")
    cli("visualize", "visualize --class 3", ["visualize", run, "--out", f"{out}/vis-class", "--steps", "2",
                                             "--no-natural", "--class", "3"], expect="ok", check="vis class")
    cli("visualize", "visualize model-file Good", ["visualize", *good, "--out", f"{out}/vis-mf", "--steps", "2",
                                                   "--no-natural", "--layer", "conv1"],
        expect="ok", check="vis model-file")


def _project(t: Table) -> None:
    """`project` (deconvnet / guided backprop)."""
    ws, cli, out, run, mf = t.ws, t.cli, t.out, t.run, t.models
    proj = ["project", run, "--out", out, "--limit", "40", "--k", "2"]
    for flags in (["--layer", "bogus"], ["--layer", "ReLU"], ["--layer", "conv1", "--channels", "4"],
                  ["--layer", "conv1", "--channels", "-1"], ["--layer", "conv1", "--channels", ","],
                  ["--layer", "conv1", "--k", "0"], ["--layer", "conv1", "--limit", "0", "--dataset",
                                                     f"folder:{ws / 'folders' / 'empty'}"]):
        cli("project", "project " + " ".join(Path(f).name if "/" in f else f for f in flags), [*proj, *flags])
    cli("project", "project --layer 3 (a 0.1 name)", [*proj, "--layer", "3"], check="hint")
    cli("project", "project --k 1000 (more than the 40 images)", [*proj, "--layer", "conv1", "--channels", "0",
                                                                   "--k", "1000"], check="either")
    cli("project", "project conv1 (sanity)", ["project", run, "--out", f"{out}/proj-ok", "--limit", "40", "--k", "2",
                                              "--layer", "conv1", "--channels", "0-1"], expect="ok",
        check="project 2x2")
    cli("project", "project --layer conv1 (default --channels 0-7; conv1 has 4)",
        ["project", run, "--out", f"{out}/proj-def", "--limit", "40", "--k", "2", "--layer", "conv1"], expect="ok",
        check="project default")
    cli("project", "project --layer fc", ["project", run, "--out", f"{out}/proj-fc", "--limit", "40", "--k", "2",
                                          "--layer", "fc", "--channels", "0"], expect="ok", check="project fc")
    cli("project", "project model-file NoParams", ["project", "--model-file", f"{mf}:NoParams", "--input-shape",
                                                   "1x28x28", "--out", out, "--limit", "40", "--layer", "relu1",
                                                   "--channels", "0"], check="either")


def _api(t: Table) -> None:
    """The Python API: 'api2' cases."""
    py, slow = t.py, t.slow
    pre = PRE_TOOLS
    api = {
        "visualize(numpy array as model)": "result = visualize(np.zeros(3), 'conv1', input_shape=S, steps=1)",
        "visualize(layer=['conv1'])": "result = visualize(run, ['conv1'], input_shape=S, steps=1)",
        "visualize(layer=3)": "result = visualize(run, 3, input_shape=S, steps=1)",
        "visualize(channels=[])": "result = visualize(run, 'conv1', [], input_shape=S, steps=1)",
        "visualize(channels='0-3')": "result = visualize(run, 'conv1', '0-3', input_shape=S, steps=1)",
        "visualize(channels=2.5)": "result = visualize(run, 'conv1', 2.5, input_shape=S, steps=1)",
        "visualize(channels=-1)": "result = visualize(run, 'conv1', -1, input_shape=S, steps=1)",
        "visualize(steps=0)": "result = visualize(run, 'conv1', input_shape=S, steps=0).values",
        "visualize(steps=-1)": "result = visualize(run, 'conv1', input_shape=S, steps=-1).values",
        "visualize(lr=nan)": "result = visualize(run, 'conv1', input_shape=S, steps=1, lr=float('nan')).values",
        "visualize(lr=-1)": "result = visualize(run, 'conv1', input_shape=S, steps=1, lr=-1.0).values",
        "visualize(tv=nan)": "result = visualize(run, 'conv1', input_shape=S, steps=1, tv=float('nan')).values",
        "visualize(l2=-inf)": "result = visualize(run, 'conv1', input_shape=S, steps=1, l2=-float('inf')).values",
        "visualize(param='bogus')": "result = visualize(run, 'conv1', input_shape=S, steps=1, param='bogus')",
        "visualize(transforms='bogus')": "result = visualize(run, 'conv1', input_shape=S, steps=1, "
                                         "transforms='bogus')",
        "visualize(transforms=[5])": "result = visualize(run, 'conv1', input_shape=S, steps=1, transforms=[5])",
        "visualize(input_shape=(1,0,0))": "result = visualize(run, 'conv1', input_shape=(1, 0, 0), steps=1)",
        "visualize(input_shape=(3,28,28))": "result = visualize(run, 'conv1', input_shape=(3, 28, 28), steps=1)",
        "visualize(input_shape=(1,30000,30000))": "result = visualize(run, 'conv1', input_shape=(1, 30000, "
                                                  "30000), steps=1)",
        "visualize(dataset=tensor)": "result = visualize(run, 'conv1', dataset=ds.images.float() / 255, "
                                     "steps=1)",
        "visualize(seed=2.5)": "result = visualize(run, 'conv1', input_shape=S, steps=1, seed=2.5)",
        "visualize(model without parameters)": "result = visualize(torch.nn.Sequential(torch.nn.ReLU()), '0', "
                                               "input_shape=S, steps=1)",
        "project(uint8 images)": "result = project(run.model, ds.images[:2], 'conv1', [(0, 0, 0)] * 2)",
        "project(list images)": "result = project(run.model, x.tolist(), 'conv1', [(0, 0, 0)] * 4)",
        "project(unit channel 99)": "result = project(run.model, x, 'conv1', [(99, 0, 0)] * 4)",
        "project(unit y,x off the map)": "result = project(run.model, x, 'conv1', [(0, 100, 100)] * 4)",
        "project(unit -1)": "result = project(run.model, x, 'conv1', [(-1, 0, 0)] * 4)",
        "project(units one short)": "result = project(run.model, x, 'conv1', [(0, 0, 0)] * 3)",
        "project(rule='bogus')": "result = project(run.model, x, 'conv1', [(0, 0, 0)] * 4, rule='bogus')",
        "project(nan inputs)": "result = project(run.model, x * float('nan'), 'conv1', [(0, 0, 0)] * 4)"
                               ".isnan().any().item()",
        "projections(tensor as dataset)": "result = projections(run, ds.images, 'conv1', [0], k=2, "
                                          "norm=run.normalization)",
        "projections(channels=[99])": "result = projections(run, ds, 'conv1', [99], k=2, "
                                      "norm=run.normalization)",
        "projections(channels=[])": "result = projections(run.model, ds, 'conv1', [], k=2, norm=run.normalization)",
        "projections(channels=[-1])": "result = projections(run, ds, 'conv1', [-1], k=2, "
                                      "norm=run.normalization).channels",
        "projections(k=0)": "result = projections(run.model, ds, 'conv1', [0], k=0, norm=run.normalization)",
        "projections(layer=None)": "result = projections(run.model, ds, None, [0], k=2, norm=run.normalization)",
    }
    either = ('visualize(model without parameters)',)
    for name, code in api.items():
        py("api2", name, pre + code, timeout=slow, check="either" if name in either else None)
    py("api2", "visualize(fc, steps=1) (sanity)", pre + "v = visualize(run, 'fc', [0, 9], input_shape=S, "
       "steps=1); result = v.channels == [0, 9] and v.images.shape == (2, 1, 28, 28)", expect="ok", check="true")
    py("api2", "project/attribute sanity", pre + "p = project(run.model, x, 'conv1', [(0, 1, 1)] * 4); "
       "a = attribute(run.model, x, 'gradcam'); result = tuple(p.shape) == (4, 1, 28, 28) and a.shape == (4, 28, 28)",
       expect="ok", check="true")
