"""Attribution: `explain` (images, methods, targets, layers, --audit) and attribute / audit_method."""

from __future__ import annotations

from pathlib import Path

from ._table import PRE_TOOLS, Table, _finite, _json_at


CHECKS = {
    "explain ok.png": _json_at("expl-img/explain-ok.json",
                               lambda d: list(d["maps"]) == ["saliency"] and len(d["maps"]["saliency"]) == 28
                               and _finite(sum(d["maps"]["saliency"], [])), "one finite 28x28 saliency map"),
    "explain gradcam relu3": _json_at("expl-relu3/explain-test-0.json",
                                      lambda d: len(d["maps"]["gradcam"]) == 28 and d["layer"] == "relu3", "28x28"),
    "explain target 9": _json_at("expl-t9/explain-test-0.json", lambda d: d["target"] == 9, "target 9"),
    "explain NoParams": _json_at("expl-np/explain-test-0.json", lambda d: "saliency" in d["maps"], "a map"),
    "audit 2 images": _json_at("audit-ok/audit.json",
                               lambda d: d["images"] == 2 and [m["method"] for m in d["methods"]] == ["saliency"],
                               "2 images, saliency"),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _explain(t)
    _api(t)


def _explain(t: Table) -> None:
    """`explain` and `explain --audit`."""
    ws, cli, out, run, im, B2, mf, slow = t.ws, t.cli, t.out, t.run, t.images, t.bad_runs2, t.models, t.slow
    stuck = t.stuck
    ex = ["explain", run, "--out", out]
    for name in ("bomb.png", "mid.png", "fifo.png", "devzero.png", "text.png", "empty.png", "dir.png", "trunc.png",
                 "big.jpg", "missing.png"):
        cli("explain", f"explain {name}", ["explain", run, im / name, "--out", out, "--method", "saliency"],
            timeout=stuck)
    cli("explain", "explain gif.png (a 28x28 GIF)", ["explain", run, im / "gif.png", "--out", out, "--method",
                                                     "saliency"], check="either")
    cli("explain", "explain RUN --options IMAGE (image after the options)",
        ["explain", run, "--out", f"{out}/expl-img", "--method", "saliency", im / "ok.png"], expect="ok",
        check="explain ok.png")
    for flags in (["--method", "bogus"], ["--method", ","], ["--method", "saliency,bogus"],
                  ["--method", "saliency", "--target", "10"], ["--method", "saliency", "--target", "-1"],
                  ["--method", "saliency", "--target", "99999999999999999999999"],
                  ["--method", "saliency", "--index", "1000000"], ["--method", "gradcam", "--layer", "bogus"],
                  ["--method", "gradcam", "--layer", "fc"], ["--method", "gradcam", "--layer", "flatten"],
                  ["--method", "guided_gradcam", "--layer", "fc"], ["--method", "gradcam", "--layer", "ReLU"],
                  ["--method", "gradcam", "--layer", " "], ["--method", "saliency", "--split", "valid"],
                  ["--method", "saliency", "--dataset", "imagenet"]):
        cli("explain", "explain " + " ".join(flags), [*ex, *flags], timeout=slow)
    cli("explain", "explain --layer 3 (a 0.1 name)", [*ex, "--method", "gradcam", "--layer", "3"], check="hint")
    cli("explain", "explain --out /proc", ["explain", run, "--out", "/proc/forbidden", "--method", "saliency"])
    cli("explain", "explain --out is a file", ["explain", run, "--out", im / "ok.png", "--method", "saliency"])
    cli("explain", "explain run:weights_missing", ["explain", B2 / "weights_missing", "--out", out, "--method",
                                                   "saliency"])
    cli("explain", "explain model-file Broken", ["explain", "--model-file", f"{mf}:Broken", "--input-shape",
                                                 "1x28x28", "--out", out, "--method", "saliency"])
    cli("explain", "explain model-file NoParams gradcam", ["explain", "--model-file", f"{mf}:NoParams",
                                                           "--input-shape", "1x28x28", "--out", out, "--method",
                                                           "gradcam"])
    cli("explain", "explain model-file NoParams saliency", ["explain", "--model-file", f"{mf}:NoParams",
                                                            "--input-shape", "1x28x28", "--out", f"{out}/expl-np",
                                                            "--method", "saliency"],
        check="explain NoParams")   # a map, or the documented refusal of models without parameters
    aud = ["explain", run, "--audit", "--out", out]
    for flags in (["--limit", "-1"], ["--limit", "abc"], ["--method", "bogus", "--limit", "2"],
                  ["--method", "saliency", "--limit", "2", "--target", "10"],
                  ["--method", "gradcam", "--limit", "2", "--layer", "fc"],
                  ["--method", "saliency", "--limit", "2", "--dataset", f"folder:{ws / 'folders' / 'fifo'}",
                   "--split", "all"]):
        cli("explain", "explain --audit " + " ".join(Path(f).name if "/" in f else f for f in flags), [*aud, *flags],
            timeout=slow)
    cli("explain", "explain --audit --limit 1 (one image)", [*aud, "--method", "saliency", "--limit", "1"],
        check="either", timeout=slow)
    cli("explain", "explain --audit --out /proc", ["explain", run, "--audit", "--out", "/proc/forbidden", "--method",
                                                   "saliency", "--limit", "2"])
    cli("explain", "explain ok.png (sanity)", ["explain", run, im / "ok.png", "--out", f"{out}/expl-img", "--method",
                                               "saliency"], expect="ok", check="explain ok.png")
    cli("explain", "explain gradcam --layer relu3", ["explain", run, "--out", f"{out}/expl-relu3", "--method",
                                                     "gradcam", "--layer", "relu3"], expect="ok",
        check="explain gradcam relu3")
    cli("explain", "explain --target 9", ["explain", run, "--out", f"{out}/expl-t9", "--method", "saliency",
                                          "--target", "9"], expect="ok", check="explain target 9")
    cli("explain", "explain --audit --limit 2 (sanity)", ["explain", run, "--audit", "--out", f"{out}/audit-ok",
                                                          "--method", "saliency", "--limit", "2"], expect="ok",
        check="audit 2 images", timeout=slow)


def _api(t: Table) -> None:
    """The Python API: 'api2' cases."""
    py, slow = t.py, t.slow
    pre = PRE_TOOLS
    api = {
        "attribute(uint8 images)": "result = attribute(run.model, ds.images[:2], 'saliency')",
        "attribute(list images)": "result = attribute(run.model, x.tolist(), 'saliency')",
        "attribute(numpy images)": "result = attribute(run.model, x.numpy(), 'saliency')",
        "attribute(model=None)": "result = attribute(None, x, 'saliency')",
        "attribute(method='bogus')": "result = attribute(run.model, x, 'bogus')",
        "attribute(method=None)": "result = attribute(run.model, x, None)",
        "attribute(target=10)": "result = attribute(run.model, x, 'saliency', target=10)",
        "attribute(target=-1)": "result = attribute(run.model, x, 'saliency', target=-1).shape",
        "attribute(target=2.5)": "result = attribute(run.model, x, 'saliency', target=2.5).shape",
        "attribute(target=[0, 1] for 4 images)": "result = attribute(run.model, x, 'saliency', target=[0, 1]).shape",
        "attribute(target='3')": "result = attribute(run.model, x, 'saliency', target='3')",
        "attribute(nan inputs)": "result = bool(np.isnan(attribute(run.model, x * float('nan'), 'saliency')).any())",
        "attribute(empty batch)": "result = attribute(run.model, x[:0], 'saliency').shape",
        "attribute(gradcam, layer='fc')": "result = attribute(run.model, x, 'gradcam', layer='fc').shape",
        "attribute(gradcam, layer='bn9')": "result = attribute(run.model, x, 'gradcam', layer='bn9')",
        "attribute(gradcam, model without conv)": "result = attribute(torch.nn.Sequential(torch.nn.Flatten(), "
                                                  "torch.nn.Linear(784, 10)), x, 'gradcam')",
        "audit_method(steps=0)": "result = audit_method(run.model, x, 'saliency', steps=0)",
        "audit_method(one image)": "result = audit_method(run.model, x[:1], 'saliency').faithfulness",
        "audit_method(uint8 images)": "result = audit_method(run.model, ds.images[:4], 'saliency')",
    }
    either = ('audit_method(one image)',)
    for name, code in api.items():
        py("api2", name, pre + code, timeout=slow, check="either" if name in either else None)
