"""The hostile sweep's wave-2 part (issue 16): checks and cases for visualize, project, explain / --audit,
experiment refine, edges --kernel files, report, serve, train --nproc, layer-name arguments and the wave-2 Python
API. hostile_cases.py adds them to its table."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from hostile_workspace import TINY

__all__ = ["WAVE2_CHECKS", "add_wave2_cases"]


# ---- checks ------------------------------------------------------------------------------------------------------

def _either(rc, out, err, ws):
    return ("correct", "accepted (a clear refusal would do as well)") if rc == 0 else None


def _hint(rc, out, err, ws):
    if rc == 2 and "named by role" not in err:
        last = (err.strip().splitlines() or [""])[-1][:150]
        return "wrong result", "refused, but without the 0.1 renaming hint: " + last
    return None


def _no_nan_out(rc, out, err, ws):
    if rc == 0 and re.search(r"\bnan\b", out.lower()):
        line = next(ln for ln in out.splitlines() if re.search(r"\bnan\b", ln.lower()))
        return "wrong result", f"succeeded with NaN values: {line.strip()[:120]}"
    return None


def _npy_pwned(rc, out, err, ws):
    if (ws / "pwned_npy.txt").exists():
        (ws / "pwned_npy.txt").unlink()
        return "loss", "a .npy kernel was unpickled: its payload ran"
    return None


def _json_at(rel: str, test, what: str):
    """rc 0: ws/_o/rel (a glob) must exist, parse, and satisfy ``test``."""
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        files = sorted((ws / "_o").glob(rel))
        if not files:
            return "wrong result", f"exit 0 but no {rel} written"
        try:
            ok = test(json.loads(files[-1].read_text()))
        except Exception as e:  # noqa: BLE001 (a malformed result is a wrong result)
            return "wrong result", f"{files[-1].name}: {type(e).__name__}: {e}"[:150]
        return ("correct", "") if ok else ("wrong result", f"{files[-1].name}: not {what}")
    return check


def _finite(values) -> bool:
    import math
    return all(math.isfinite(v) for v in values)


def _report_at(rel: str):
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        p = ws / "_o" / rel
        if not p.is_file() or "<html" not in p.read_text(errors="replace")[:2000].lower():
            return "wrong result", f"exit 0 but no HTML at {rel}"
        return "correct", ""
    return check


def _report_secret(rc, out, err, ws):
    import base64

    from hostile_workspace import SECRET
    html = list((ws / "runs_bad2" / "curve_outside").glob("*.html")) + list((ws / "_o").glob("rep-secret*"))
    if any(base64.b64encode(SECRET).decode() in p.read_text(errors="replace") for p in html):
        return "loss", "curve.png, a symlink out of the run, was read and embedded in the report"
    return None


def _nproc(refuse: bool):
    """py nproc cases print RESULT: ('spawned', N) (subprocess.run stubbed) or ('ran here', rc)."""
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        m = re.search(r"RESULT: \('(spawned|ran here)', (-?\d+)\)", out)
        if m is None:
            return "wrong result", "no RESULT line"
        cpus = os.cpu_count() or 1
        if m[1] == "spawned" and int(m[2]) > cpus:
            return "wrong result", f"would start {m[2]} torchrun workers on {cpus} CPUs without a word"
        if refuse:
            return "wrong result", ("ran as one process without a word" if m[1] == "ran here"
                                    else f"accepted: {m[2]} processes")
        return "correct", m[1] + (f" {m[2]}" if m[1] == "spawned" else "")
    return check


WAVE2_CHECKS = {
    "either": _either, "hint": _hint, "no_nan": _no_nan_out, "npy_pwned": _npy_pwned,
    "report_secret": _report_secret, "nproc_refuse": _nproc(True), "nproc_ok": _nproc(False),
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
    "refine ok": _json_at("refine-ok/results.json", lambda d: True, "JSON"),
    "refine model-file": _json_at("refine-mf/results.json", lambda d: True, "JSON"),
    "edges [[1,-1]]": _json_at("edg-ok/edges-kernel1x2-*.json",
                               lambda d: d["kernel"] == [[1, -1]] and d["exact"] and d["images"] == 20, "exact"),
    "edges ok.npy": _json_at("edg-npy/edges-kernel3x3-*.json",
                             lambda d: d["kernel"] == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "sobel-x"),
    # a positive 1x1 kernel keeps every non-zero pixel non-zero
    "edges identity": _json_at("edg-id*/edges-kernel1x1-*.json",
                               lambda d: d["filtered_nonzero"]["mean"] == d["input_nonzero"]["mean"]
                               and d["after_relu_nonzero"]["mean"] == d["input_nonzero"]["mean"],
                               "non-zero pixels kept by a positive 1x1 kernel"),
    "report ok": _report_at("rep-ok.html"),
    "report into dir": _report_at("rep-dir/report.html"),
}


# ---- wave 2: visualize, project, explain, experiment refine, edges --kernel, report, serve, --nproc, the API ------

def _climain(argv: list[str], before: str = "") -> str:
    """A py case that runs the CLI in-process after ``before`` (a stub), exiting with its status."""
    return (f"import sys\n{before}from convscope.cli import main\nrc = main({argv!r})\n"
            "if rc:\n    raise SystemExit(rc)\n")


STUB_UVICORN = ("import uvicorn\n"
                "uvicorn.Server.run = lambda self, *a, **k: print('uvicorn.Server.run stubbed: STARTED')\n")
STUB_TORCHRUN = ("import subprocess\nimport convscope.distributed.launch as L\nspawned = []\n"
                 "class _Sub:\n    @staticmethod\n    def run(cmd, **kw):\n        spawned.append(list(cmd))\n"
                 "        return subprocess.CompletedProcess(cmd, 0)\nL.subprocess = _Sub\n")


def add_wave2_cases(ws: Path, timeout: float, cli, py) -> None:
    out = str(ws / "_o")
    run = str(ws / "run")
    im = ws / "images"
    K = ws / "kernels"
    B2 = ws / "runs_bad2"
    mf = str(ws / "models.py")
    good = ["--model-file", f"{mf}:Good", "--weights", str(ws / "good.safetensors")]
    slow = max(timeout, 90)
    stuck = 60  # inputs that could block (FIFOs): a quick refusal is due, waiting longer proves nothing

    # -- visualize (feature visualization) --------------------------------------------------------------------------
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

    # -- project (deconvnet / guided backprop) ----------------------------------------------------------------------
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

    # -- explain (attribution) --------------------------------------------------------------------------------------
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

    # -- experiment refine ------------------------------------------------------------------------------------------
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

    # -- edges --kernel -------------------------------------------------------------------------------------------
    edg = ["edges", "--out", out, "--limit", "20"]
    for text in ("[]", "[[]]", "[[1, 2], [3]]", '[["a"]]', "[[NaN]]", "[[Infinity]]", "[[1e999]]", "[[true]]",
                 '{"a": 1}', "5", "[1, 2, 3]", "[[[1]]]", "[[1, 2], 3]", "sobel", "", "[[1," + "0," * 50_000 + "1]]"):
        cli("kernel", f"edges --kernel {text[:40]!r}", [*edg, "--kernel", text])
    for name in ("pickle.npy", "pickle.bin", "3d.npy", "0x0.npy", "nan.npy", "inf.npy", "bool.npy", "complex.npy",
                 "structured.npy", "scalar.npy", "huge.npy", "header_lie.npy", "text.npy", "empty.npy", "fifo.npy",
                 "devzero.npy", "dir.npy", "missing.npy"):
        cli("kernel", f"edges --kernel {name}", [*edg, "--kernel", K / name], timeout=stuck,
            check="npy_pwned" if name.startswith("pickle") else None)
    cli("kernel", "edges --kernel kernel.json (a JSON file)", [*edg, "--kernel", K / "kernel.json"], check="either")
    cli("kernel", "edges --kernel --tolerance nan", [*edg, "--kernel", "[[0.5, -0.5]]", "--tolerance", "nan"])
    cli("kernel", "edges --kernel [[1,-1]] (sanity)", ["edges", "--out", f"{out}/edg-ok", "--limit", "20",
                                                       "--kernel", "[[1, -1]]"], expect="ok", check="edges [[1,-1]]")
    cli("kernel", "edges --kernel ok.npy (sanity)", ["edges", "--out", f"{out}/edg-npy", "--limit", "20",
                                                     "--kernel", K / "ok.npy"], expect="ok", check="edges ok.npy")
    for i, text in enumerate(("[[2]]", "[[1e308]]", "[[1e-320]]")):
        cli("kernel", f"edges --kernel {text} (positive 1x1: keeps every non-zero pixel)",
            ["edges", "--out", f"{out}/edg-id{i}", "--limit", "20", "--kernel", text], expect="ok",
            check="edges identity")

    # -- report -------------------------------------------------------------------------------------------------------
    rep = ["report", run]
    cli("web", "report -o /proc", [*rep, "-o", "/proc/forbidden.html"], timeout=slow)
    cli("web", "report -o an existing directory", [*rep, "-o", f"{out}/rep-dir"], timeout=slow,
        check="report into dir")
    for flags in (["--layer", "bogus"], ["--layer", "fc"], ["--layer", "ReLU"], ["--layer", " "],
                  ["--filter", "bogus"]):
        cli("web", "report " + " ".join(flags), [*rep, "-o", f"{out}/rep-x.html", *flags], timeout=slow)
    cli("web", "report --layer 3 (a 0.1 name)", [*rep, "-o", f"{out}/rep-x.html", "--layer", "3"], check="hint",
        timeout=slow)
    for bad in ("/nonexistent", str(im / "ok.png"), *(str(ws / "runs_bad" / n) for n in (
            "meta_missing", "weights_pickle", "weights_truncated", "summary_list", "meta_fifo")),
            *(str(B2 / n) for n in ("weights_missing", "metrics_garbage", "metrics_list", "metrics_nokeys",
                                    "metrics_fifo", "summary_fifo", "curve_fifo"))):
        cli("web", f"report run:{Path(bad).name}", ["report", bad, "-o", f"{out}/rep-bad.html"], timeout=stuck,
            expect="ok" if bad.endswith("curve_fifo") else "error")   # no curve: the report without it
    cli("web", "report curve.png symlinked out of the run", ["report", B2 / "curve_outside", "-o",
                                                             f"{out}/rep-secret.html"], check="report_secret",
        timeout=slow, expect="ok")
    cli("web", "report (sanity)", [*rep, "-o", f"{out}/rep-ok.html"], expect="ok", check="report ok", timeout=slow)

    # -- serve: argument checks (uvicorn's Server.run stubbed: a serve that would start prints STARTED, exit 0) --------
    for flags in (["--port", "-1"], ["--port", "70000"], ["--port", "abc"], ["--port", "1.5"], ["--port", "0"],
                  ["--host", "not-an-address"], ["--host", ""], ["--threads", "0"], ["--threads", "-1"]):
        py("web", "serve " + " ".join(flags), _climain(["serve", run, *flags], STUB_UVICORN), timeout=stuck)
    for target in ("/nonexistent", str(im / "ok.png"), str(ws / "configs" / "fifo.yaml"),
                   str(ws / "folders" / "empty"), str(ws / "runs_bad" / "meta_missing")):
        py("web", f"serve {Path(target).name}", _climain(["serve", target, "--port", "18765"], STUB_UVICORN),
           timeout=stuck)
    py("web", "serve run (sanity, stubbed)", _climain(["serve", run, "--port", "18765"], STUB_UVICORN), expect="ok",
       timeout=stuck)
    # real binds that must fail at once (nothing is left running: a server that starts is killed at the timeout)
    for host in ("not-an-address", "999.1.1.1"):
        cli("web", f"serve --host {host} --allow-remote (real bind)", ["serve", run, "--host", host, "--allow-remote",
                                                                       "--port", "18765"], timeout=stuck)
    py("web", "serve --port in use (real bind)",
       "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nport = s.getsockname()[1]\n"
       + _climain(["serve", run, "--port", "PORT"]).replace("'PORT'", "str(port)"), timeout=stuck)

    # -- train --nproc (torchrun stubbed: the command it would start is recorded, nothing is spawned) ----------------
    for val in ("0", "-1", "1000", "abc", "2.5", "1", "2"):
        argv = ["train", "--nproc", val, "--out", f"{out}/np{val}", *TINY]
        sane = val in ("1", "2")
        py("nproc", f"train --nproc {val}" + (" (sanity)" if sane else ""),
           STUB_TORCHRUN + f"import sys\nsys.argv = ['convscope'] + {argv!r}\n" + _climain(argv)
           + "result = ('spawned', int(spawned[0][spawned[0].index('--nproc_per_node') + 1])) "
           "if spawned else ('ran here', rc)\n", expect="ok" if sane else "error",
           check="nproc_ok" if sane else "nproc_refuse", timeout=slow)

    # -- layer-name arguments across commands ------------------------------------------------------------------------
    lim = ["--out", out, "--limit", "40"]
    for cmd, flag, val, exp in (("topk", "--layer", "relu1,,relu2", "either"), ("topk", "--layer", " ", "error"),
                                ("topk", "--layer", ",", "error"), ("topk", "--layer", "3", "hint"),
                                ("sparsity", "--layers", " ", "error"), ("sparsity", "--layers", "4", "hint"),
                                ("features", "--layers", ",", "error"),
                                ("features", "--layers", "ReLU,relu1", "either"),
                                ("filters", "--layer", " ", "error"), ("filters", "--layer", "ReLU", "error"),
                                ("filters", "--layer", "Conv2d", "ok"), ("filters", "--layer", "0", "hint"),
                                ("matrix", "--layer", " ", "error"), ("matrix", "--layer", "Conv2d", "error"),
                                ("matrix", "--layer", "0", "hint")):
        argv = [cmd, run, flag, val] + {"matrix": [], "filters": ["--out", out]}.get(cmd, lim) \
            + (["--k", "2"] if cmd == "topk" else [])
        cli("layerarg", f"{cmd} {flag} {val!r}", argv, expect="ok" if exp == "ok" else "error",
            check=None if exp in ("ok", "error") else exp, timeout=slow)

    # -- the Python API of wave 2 ------------------------------------------------------------------------------------
    pre = ("import torch, numpy as np, convscope\nfrom convscope.data import load\n"
           "from convscope.inspect import visualize, project, projections, attribute, audit_method, "
           "receptive_field_report\nfrom convscope.matrix.report import describe_conv\n"
           "from convscope.matrix.spectrum import layer_spectrum\n"
           "from convscope.experiments import refine, RefineConfig\n"
           "run = convscope.load_run(WS/'run')\nds = load('digits', 'test').subset(np.arange(40))\n"
           "x = run.preprocess(ds.images[:4])\nS = (1, 28, 28)\nW = np.ones((1, 1, 3, 3))\n"
           "FAST = dict(train_limit=100, test_limit=50, seeds=(0,), variants=('top',), steps=1, eval_every=1, k=1, "
           "bn=('frozen',), bn_images=20)\n")
    api = {
        "visualize(numpy array as model)": "result = visualize(np.zeros(3), 'conv1', input_shape=S, steps=1)",
        "visualize(layer=['conv1'])": "result = visualize(run.model, ['conv1'], input_shape=S, steps=1)",
        "visualize(layer=3)": "result = visualize(run.model, 3, input_shape=S, steps=1)",
        "visualize(channels=[])": "result = visualize(run.model, 'conv1', [], input_shape=S, steps=1)",
        "visualize(channels='0-3')": "result = visualize(run.model, 'conv1', '0-3', input_shape=S, steps=1)",
        "visualize(channels=2.5)": "result = visualize(run.model, 'conv1', 2.5, input_shape=S, steps=1)",
        "visualize(channels=-1)": "result = visualize(run.model, 'conv1', -1, input_shape=S, steps=1)",
        "visualize(steps=0)": "result = visualize(run.model, 'conv1', input_shape=S, steps=0).values",
        "visualize(steps=-1)": "result = visualize(run.model, 'conv1', input_shape=S, steps=-1).values",
        "visualize(lr=nan)": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, lr=float('nan')).values",
        "visualize(lr=-1)": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, lr=-1.0).values",
        "visualize(tv=nan)": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, tv=float('nan')).values",
        "visualize(l2=-inf)": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, l2=-float('inf')).values",
        "visualize(param='bogus')": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, param='bogus')",
        "visualize(transforms='bogus')": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, "
                                         "transforms='bogus')",
        "visualize(transforms=[5])": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, transforms=[5])",
        "visualize(input_shape=(1,0,0))": "result = visualize(run.model, 'conv1', input_shape=(1, 0, 0), steps=1)",
        "visualize(input_shape=(3,28,28))": "result = visualize(run.model, 'conv1', input_shape=(3, 28, 28), steps=1)",
        "visualize(input_shape=(1,30000,30000))": "result = visualize(run.model, 'conv1', input_shape=(1, 30000, "
                                                  "30000), steps=1)",
        "visualize(dataset=tensor)": "result = visualize(run.model, 'conv1', dataset=ds.images.float() / 255, "
                                     "steps=1)",
        "visualize(seed=2.5)": "result = visualize(run.model, 'conv1', input_shape=S, steps=1, seed=2.5)",
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
        "projections(tensor as dataset)": "result = projections(run.model, ds.images, 'conv1', [0], k=2, "
                                          "norm=run.normalization)",
        "projections(channels=[99])": "result = projections(run.model, ds, 'conv1', [99], k=2, "
                                      "norm=run.normalization)",
        "projections(channels=[])": "result = projections(run.model, ds, 'conv1', [], k=2, norm=run.normalization)",
        "projections(channels=[-1])": "result = projections(run.model, ds, 'conv1', [-1], k=2, "
                                      "norm=run.normalization).channels",
        "projections(k=0)": "result = projections(run.model, ds, 'conv1', [0], k=0, norm=run.normalization)",
        "projections(layer=None)": "result = projections(run.model, ds, None, [0], k=2, norm=run.normalization)",
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
        "receptive_field_report(numpy model)": "result = receptive_field_report(np.zeros(3), S)",
        "receptive_field_report(shape=28)": "result = receptive_field_report(run.model, 28)",
        "receptive_field_report(shape='1x28x28')": "result = receptive_field_report(run.model, '1x28x28')",
        "receptive_field_report(shape=(1,0,0))": "result = receptive_field_report(run.model, (1, 0, 0))",
        "receptive_field_report(shape=(3,28,28))": "result = receptive_field_report(run.model, (3, 28, 28))",
        "receptive_field_report(shape=(1,4,4))": "result = receptive_field_report(run.model, (1, 4, 4))",
        "describe_conv(weight='w')": "result = describe_conv('w', (1, 4, 4))",
        "describe_conv(weight=list 2-D)": "result = describe_conv([[1, 2], [3, 4]], (1, 4, 4))",
        "describe_conv(nan weight)": "result = describe_conv(np.full((1, 1, 3, 3), np.nan), (1, 4, 4), "
                                     "spectrum=True).report",
        "describe_conv(input_shape='1x4x4')": "result = describe_conv(W, '1x4x4')",
        "describe_conv(stride=0)": "result = describe_conv(W, (1, 4, 4), stride=0)",
        "describe_conv(padding_mode='bogus')": "result = describe_conv(W, (1, 4, 4), padding_mode='bogus')",
        "describe_conv(max_memory=-1)": "result = describe_conv(W, (1, 4, 4), max_memory=-1)",
        "layer_spectrum(nan weight)": "result = layer_spectrum(np.full((1, 1, 3, 3), np.nan), (1, 4, 4))",
        "layer_spectrum(inf weight)": "result = layer_spectrum(np.full((1, 1, 3, 3), np.inf), (1, 4, 4))",
        "layer_spectrum(weight='w')": "result = layer_spectrum('w', (1, 4, 4))",
        "layer_spectrum(input_shape=(1,0,0))": "result = layer_spectrum(W, (1, 0, 0))",
        "layer_spectrum(dense_limit=-1)": "result = layer_spectrum(W, (1, 4, 4), dense_limit=-1).exact",
        "layer_spectrum(0 output channels)": "result = layer_spectrum(np.ones((0, 1, 3, 3)), (1, 4, 4))",
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
    # legitimate requests: a result is fine (a model without parameters still has a well-defined optimal image;
    # a plain dict is a fine refine config)
    either = ("audit_method(one image)", "layer_spectrum(dense_limit=-1)", "visualize(model without parameters)",
              "refine(config as dict)")
    for name, code in api.items():
        py("api2", name, pre + code, timeout=slow, check="either" if name in either else None)
    py("api2", "visualize(fc, steps=1) (sanity)", pre + "v = visualize(run.model, 'fc', [0, 9], input_shape=S, "
       "steps=1); result = v.channels == [0, 9] and v.images.shape == (2, 1, 28, 28)", expect="ok", check="true")
    py("api2", "project/attribute sanity", pre + "p = project(run.model, x, 'conv1', [(0, 1, 1)] * 4); "
       "a = attribute(run.model, x, 'gradcam'); result = tuple(p.shape) == (4, 1, 28, 28) and a.shape == (4, 28, 28)",
       expect="ok", check="true")
    py("api2", "describe_conv/layer_spectrum sanity", pre + "r = describe_conv(W, (1, 4, 4), spectrum=True); "
       "s = layer_spectrum(torch.nn.Conv2d(1, 1, 3), (1, 4, 4)); result = tuple(r.report.shape) == (4, 16) and "
       "s.exact", expect="ok", check="true")
    py("api2", "receptive_field_report sanity", pre + "r = receptive_field_report(run.model, S); "
       "result = [row.layer for row in r.rows][:2] == [n for n, m in run.model.named_modules() if n and not "
       "list(m.children())][:2]", expect="ok", check="true")
