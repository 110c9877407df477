"""The hostile sweep's case table: what each case runs, what it should do, and the checks and scenarios."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hostile_workspace import PY, TINY, make_workspace

__all__ = ["CHECKS", "SCENARIOS", "Case", "build_cases", "make_workspace"]


@dataclass
class Case:
    id: str
    area: str
    kind: str                   # cli | py | scenario
    argv: list[str] | None = None
    code: str | None = None
    expect: str = "error"       # error: the input must be refused with a message; ok: it must work
    timeout: float = 30.0
    check: str | None = None    # name in CHECKS: (rc, out, err, ws) -> (category, note) or None
    scenario: str | None = None  # name in SCENARIOS: (ws, timeout) -> (category, note)


# ---- checks ------------------------------------------------------------------------------------------------------

def _escaped(rc, out, err, ws):
    if (ws.parent / "escaped-run").exists() or (ws / "escaped-run").exists():
        shutil.rmtree(ws.parent / "escaped-run", ignore_errors=True)
        return "loss", "the run was written outside --runs-dir"
    return None


def _abs(rc, out, err, ws):
    if (ws / "_o" / "abs-run").exists():
        shutil.rmtree(ws / "_o" / "abs-run", ignore_errors=True)
        return "loss", "the run was written at the config's absolute name, outside --runs-dir"
    return None


def _pwned(rc, out, err, ws):
    if (ws / "pwned.txt").exists():
        return "loss", "a YAML tag ran code"
    return None


def _topk_records(k):
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        files = sorted((ws / "_o").rglob("topk-*.json"))
        if not files:
            return "wrong result", "no topk JSON written"
        data = json.loads(files[-1].read_text())
        if any(len(ch) != k for ch in data["channels"]):
            return "wrong result", f"records per channel {len(data['channels'][0])}, asked {k}"
        return "correct", ""
    return check


def _result_is(expected: str):
    def check(rc, out, err, ws):
        if rc == 0:
            return ("correct", "") if f"RESULT: {expected}" in out else ("wrong result", out.strip()[-120:])
        return None
    return check


def _silent_nan(rc, out, err, ws):
    if rc == 0:
        return "wrong result", "non-finite value accepted; the run 'succeeded'"
    return None


CHECKS = {"escaped": _escaped, "abs": _abs, "pwned": _pwned, "topk3": _topk_records(3), "topk1": _topk_records(1),
          "true": _result_is("True"), "silent": _silent_nan}


# wave-2 checks ------------------------------------------------------------------------------------------------

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


CHECKS.update({
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
})


# ---- scenarios (several processes) ------------------------------------------------------------------------------

def _train_cmd(ws: Path, out: Path, *extra: str) -> list[str]:
    return [PY, "-m", "convscope", "train", "--out", str(out), *TINY, *extra]


def _concurrent_out(ws: Path, timeout: float):
    out = ws / "_o" / "concurrent"
    env = {**os.environ, "CONVSCOPE_DATA": str(ws / "_cache")}
    procs = [subprocess.Popen(_train_cmd(ws, out, "--seed", str(s)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env) for s in (1, 2)]
    rcs = [p.wait(timeout=timeout) for p in procs]
    if rcs == [0, 0]:
        return "loss", "both trainings on one --out reported success (no lock): one run silently overwrote the other"
    return "clear error", f"exit codes {rcs}"


def _kill_resume(ws: Path, timeout: float):
    out = ws / "_o" / "killed"
    env = {**os.environ, "CONVSCOPE_DATA": str(ws / "_cache")}
    cmd = [PY, "-m", "convscope", "train", "--out", str(out), "--epochs", "2", "--train-subset", "512",
           "--model-arg", "width=4", "--threads", "1", "--quiet", "--batch-size", "32", "--checkpoint-every", "2",
           "--no-tta", "--deterministic"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline and not (out / "checkpoint.safetensors").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = subprocess.run([PY, "-m", "convscope", "train", "--resume", str(out), "--quiet"], capture_output=True,
                       text=True, env=env, timeout=timeout, check=False)
    if r.returncode == 0 and (out / "model.json").exists():
        return "correct", "killed mid-run, resumed to completion"
    return ("traceback" if "Traceback" in r.stderr else "clear error"), r.stderr.strip()[-200:]


SCENARIOS = {"concurrent_out": _concurrent_out, "kill_resume": _kill_resume}


# ---- the case table ----------------------------------------------------------------------------------------------

def build_cases(ws: Path, timeout: float) -> list[Case]:
    cases: list[Case] = []
    out = str(ws / "_o")
    run = str(ws / "run")
    F = ws / "folders"
    D = ws / "data"
    im = ws / "images"
    C = ws / "configs"
    seen: dict[str, int] = {}

    def add(area, cid, kind="cli", **kw):
        seen[cid] = seen.get(cid, 0) + 1
        cid = cid if seen[cid] == 1 else f"{cid}#{seen[cid]}"
        kw.setdefault("timeout", timeout)
        cases.append(Case(cid, area, kind, **kw))

    def cli(area, cid, argv, **kw):
        add(area, cid, "cli", argv=[str(a) for a in argv], **kw)

    def py(area, cid, code, **kw):
        add(area, cid, "py", code=code, **kw)

    # -- data ------------------------------------------------------------------------------------------------------
    cli("data", "data list", ["data", "list"], expect="ok")
    for sub in ("bomb", "devzero", "fifo", "trunc", "junk"):
        cli("data", f"data list --data-dir {sub}", ["data", "list", "--data-dir", D / sub], expect="ok")
        for ds in ("mnist", "fashion-mnist"):
            cli("data", f"data show {ds} --data-dir {sub}",
                ["data", "show", ds, "--data-dir", D / sub, "--no-download", "--out", f"{out}/s.png"])
    cli("data", "data show cifar10 gzip bomb", ["data", "show", "cifar10", "--data-dir", D / "cifarbomb",
                                                "--no-download", "--out", f"{out}/s.png"])
    cli("data", "data show cifar10 FIFO batches", ["data", "show", "cifar10", "--split", "test", "--data-dir",
                                                   D / "cifarfifo", "--no-download", "--out", f"{out}/s.png"])
    for name in ("one", "mixed", "fifo", "bomb", "devzero", "outside", "junk", "nested", "empty", "noimages",
                 "fifo_root"):
        cli("data", f"data show folder:{name}", ["data", "show", f"folder:{F / name}", "--split", "all", "--out",
                                                 f"{out}/s.png"], expect="ok" if name == "one" else "error")
        cli("data", f"data show folder:{name} train", ["data", "show", f"folder:{F / name}", "--out", f"{out}/s.png"])
    cli("data", "data show folder:ok", ["data", "show", f"folder:{F / 'ok'}", "--split", "all", "--out",
                                        f"{out}/s.png"], expect="ok")
    cli("data", "data show folder:mixed?resize=fit", ["data", "show", f"folder:{F / 'mixed'}?resize=fit",
                                                      "--split", "all", "--out", f"{out}/s.png"], expect="ok")
    cli("data", "data show folder:mixed --resize fit", ["data", "show", f"folder:{F / 'mixed'}", "--resize", "fit",
                                                        "--split", "all", "--out", f"{out}/s.png"], expect="ok")
    for size in ("0x0", "-1x5", "abc", "28", "1x1x1", "99999x99999"):
        cli("data", f"data show --size {size}", ["data", "show", f"folder:{F / 'mixed'}", "--resize", "fit",
                                                 "--size", size, "--split", "all", "--out", f"{out}/s.png"])
    for per in ("0", "-1", "abc"):
        cli("data", f"data show --per-class {per}", ["data", "show", "digits", "--per-class", per, "--out",
                                                     f"{out}/s.png"])
    for split in ("valid", "", "TRAIN"):
        cli("data", f"data show digits --split '{split}'", ["data", "show", "digits", "--split", split, "--out",
                                                            f"{out}/s.png"])
    cli("data", "data show unknown", ["data", "show", "imagenet", "--out", f"{out}/s.png"])
    cli("data", "data show out=/proc", ["data", "show", "digits", "--out", "/proc/forbidden.png"])
    # -- predict ----------------------------------------------------------------------------------------------------
    for name in ("ok.png", "big.jpg"):
        cli("predict", f"predict {name}", ["predict", run, im / name], expect="ok")
    for name in ("bomb.png", "mid.png", "fifo.png", "devzero.png", "text.png", "empty.png", "dir.png", "gif.png",
                 "trunc.png", "missing.png"):
        cli("predict", f"predict {name}", ["predict", run, im / name])
    for top in ("0", "-1", "abc"):
        cli("predict", f"predict --top {top}", ["predict", run, im / "ok.png", "--top", top])
    cli("predict", "predict --top 1000", ["predict", run, im / "ok.png", "--top", "1000"], expect="ok")
    for bad in sorted(p.name for p in (ws / "runs_bad").iterdir()):
        exp = "ok" if bad == "checkpoint_garbage" else "error"  # a finished run does not need its checkpoint
        cli("rundir", f"predict run:{bad}", ["predict", ws / "runs_bad" / bad, im / "ok.png"], expect=exp)
        cli("rundir", f"eval run:{bad}", ["eval", ws / "runs_bad" / bad], expect=exp)
        cli("rundir", f"layers run:{bad}", ["layers", ws / "runs_bad" / bad, "--out", out], expect=exp)
    for target in ("/nonexistent", str(im / "ok.png"), str(C / "fifo.yaml"), "/dev/zero"):
        cli("rundir", f"eval {target}", ["eval", target])
    py("rundir", "load_run(FIFO dir entry)", "import convscope; result = convscope.load_run(WS/'runs_bad'/'meta_fifo')")
    py("rundir", "load_run(str number)", "import convscope; result = convscope.load_run(5)")
    # -- train ------------------------------------------------------------------------------------------------------
    for flag, val in (("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--momentum", "nan"),
                      ("--weight-decay", "inf"), ("--label-smoothing", "nan"), ("--ema", "nan"),
                      ("--grad-clip", "nan"), ("--dropout", "nan"), ("--warmup-epochs", "inf")):
        cli("train", f"train {flag} {val}", ["train", "--out", f"{out}/t{flag}{val}", *TINY, flag, val],
            check="silent", timeout=max(timeout, 90))
    for flag, val in (("--epochs", "0"), ("--epochs", "-1"), ("--batch-size", "0"), ("--batch-size", "-5"),
                      ("--threads", "0"), ("--train-subset", "-1"), ("--checkpoint-every", "0"),
                      ("--log-every", "0"), ("--max-bad-steps", "0"), ("--val-fraction", "1.5"),
                      ("--translate", "-1"), ("--cutout", "-3"), ("--device", "tpu"), ("--model", "nope"),
                      ("--model-arg", "width=0"), ("--model-arg", "width=abc"), ("--model-arg", "nokey"),
                      ("--model-arg", "bogus=1"), ("--epochs", "1e9")):
        cli("train", f"train {flag} {val}", ["train", "--out", f"{out}/t{flag}{val}", *TINY, flag, val],
            timeout=max(timeout, 90))
    for name in ("one", "mixed", "fifo", "bomb", "devzero", "outside", "empty", "rgb"):
        cli("train", f"train folder:{name}", ["train", "--out", f"{out}/tf{name}", *TINY, "--dataset",
                                              f"folder:{F / name}"], timeout=max(timeout, 90),
            expect="ok" if name == "rgb" else "error")
    cli("train", "train folder:mixed?resize=fit", ["train", "--out", f"{out}/tfmixfit", *TINY, "--dataset",
                                                   f"folder:{F / 'mixed'}?resize=fit&size=28x28"],
        expect="ok", timeout=max(timeout, 120))
    cli("train", "train --resize (does not exist)", ["train", "--out", f"{out}/tfr", *TINY, "--resize", "fit"])
    for sub in ("bomb", "devzero", "fifo", "trunc", "junk"):
        cli("train", f"train mnist --data-dir {sub}", ["train", "--out", f"{out}/tm{sub}", *TINY, "--dataset", "mnist",
                                                       "--data-dir", D / sub], timeout=max(timeout, 60))
    cli("train", "train --out /proc", ["train", "--out", "/proc/run", *TINY])
    cli("train", "train --out existing run", ["train", "--out", run, *TINY])
    cli("train", "train --runs-dir FIFO", ["train", "--runs-dir", C / "fifo.yaml", *TINY])
    for target in ("/nonexistent", str(C / "fifo.yaml"), str(im / "ok.png"),
                   str(ws / "runs_bad" / "checkpoint_garbage")):
        cli("train", f"train --resume {Path(target).name}", ["train", "--resume", target, "--quiet"],
            timeout=max(timeout, 60), expect="ok" if "checkpoint_garbage" in target else "error")
    cli("train", "train tiny (sanity)", ["train", "--out", f"{out}/sane", *TINY], expect="ok", timeout=max(timeout, 90))
    # -- config -----------------------------------------------------------------------------------------------------
    cli("config", "config YAML alias bomb", ["train", "--config", C / "bomb.yaml", "--out", f"{out}/cb", *TINY],
        timeout=max(timeout, 60))
    cli("config", "config name ../../x", ["train", "--config", C / "name_up.yaml", "--runs-dir", f"{out}/runs"],
        check="escaped", timeout=max(timeout, 90))
    cli("config", "config absolute name", ["train", "--config", C / "name_abs.yaml", "--runs-dir", f"{out}/runs"],
        check="abs", timeout=max(timeout, 90))
    cli("config", "--name ../../x", ["train", "--name", "../../escaped-run", "--runs-dir", f"{out}/runs", *TINY],
        check="escaped", timeout=max(timeout, 90))
    cli("config", "config python tag", ["train", "--config", C / "python.yaml", "--out", f"{out}/cp", *TINY],
        check="pwned")
    for name in ("unknown.yaml", "wrongtype.yaml", "list.yaml", "nonutf8.yaml", "broken.toml", "nan.json",
                 "deep.json", "bigint.yaml", "fifo.yaml", "devzero.yaml", "empty.yaml", "missing.yaml"):
        cli("config", f"config {name}", ["train", "--config", C / name, "--out", f"{out}/c{name}", *TINY],
            check="silent" if name in ("nan.json",) else None, timeout=max(timeout, 60),
            expect="ok" if name == "empty.yaml" else "error")  # an empty file: the defaults
    py("config", "train({'lr': nan})", "import convscope; result = convscope.train({'lr': float('nan'), 'epochs': 1, "
       "'train_subset': 64, 'model_args': {'width': 4}, 'threads': 1, 'tta': False}, out=WS/'_o'/'pynan', "
       "progress=False).summary", check="silent", timeout=max(timeout, 90))
    py("config", "train('not a dict')", "import convscope; result = convscope.train('epochs: 3')")
    py("config", "train({'epochs': True})", "import convscope; result = convscope.train({'epochs': True, "
       "'train_subset': 64}, out=WS/'_o'/'pybool', progress=False)", timeout=max(timeout, 90))
    # -- kills and concurrency --------------------------------------------------------------------------------------
    add("kills", "SIGKILL mid-run, then --resume", "scenario", scenario="kill_resume", expect="ok",
        timeout=max(timeout, 240))
    add("kills", "two trains on one --out at once", "scenario", scenario="concurrent_out",
        timeout=max(timeout, 240))
    # -- inspection commands ----------------------------------------------------------------------------------------
    mf = str(ws / "models.py")
    targets = {"run": [run], "model-file Good": ["--model-file", f"{mf}:Good", "--weights", ws / "good.safetensors"],
               "model-file NoParams": ["--model-file", f"{mf}:NoParams", "--input-shape", "1x28x28"]}
    bad_targets = {"model-file Broken": ["--model-file", f"{mf}:Broken"],
                   "model-file NotModule": ["--model-file", f"{mf}:NotModule"],
                   "model-file Missing": ["--model-file", f"{mf}:Missing"],
                   "model-file no class": ["--model-file", mf],
                   "model-file nonexistent": ["--model-file", "/nonexistent.py:Good"],
                   "model-file FIFO": ["--model-file", f"{C / 'fifo.yaml'}:Good"],
                   "weights pickle": ["--model-file", f"{mf}:Good", "--weights", ws / "w.pt"],
                   "weights garbage": ["--model-file", f"{mf}:Good", "--weights", ws / "garbage.safetensors"],
                   "weights FIFO": ["--model-file", f"{mf}:Good", "--weights", ws / "fifo.safetensors"],
                   "weights wrong keys": ["--model-file", f"{mf}:Good", "--weights", ws / "wrongkeys.safetensors"],
                   "input-shape 0x0x0": ["--model-file", f"{mf}:Good", "--input-shape", "0x0x0"],
                   "input-shape abc": ["--model-file", f"{mf}:Good", "--input-shape", "abc"],
                   "input-shape 3x28x28": ["--model-file", f"{mf}:Good", "--input-shape", "3x28x28"],
                   "mean nan": ["--model-file", f"{mf}:Good", "--mean", "nan"],
                   "std 0": ["--model-file", f"{mf}:Good", "--std", "0"],
                   "std -1": ["--model-file", f"{mf}:Good", "--std", "-1"],
                   "run missing": ["/nonexistent-run"]}
    lim = ["--limit", "40"]
    cmds = {"layers": [], "sparsity": lim, "topk": lim + ["--layer", "relu1", "--k", "3"],
            "features": ["--index", "0"], "filters": [], "rf": []}
    for cmd, extra in cmds.items():
        for tname, targ in targets.items():
            if tname == "model-file NoParams":   # a parameter-free model file: a result or the documented refusal
                cli("inspect", f"{cmd} {tname}", [cmd, *targ, *extra, "--out", out], check="either")
                continue
            cli("inspect", f"{cmd} {tname}", [cmd, *targ, *extra, "--out", out], expect="ok",
                check="topk3" if cmd == "topk" else None)
        for tname, targ in bad_targets.items():
            cli("inspect", f"{cmd} {tname}", [cmd, *targ, *extra, "--out", out])
    flagcases = {
        "sparsity": [("--limit", "-1"), ("--limit", "abc"), ("--threshold", "nan"), ("--threshold", "-1"),
                     ("--threshold", "inf"), ("--layers", "bogus"), ("--layers", ","), ("--layers", "relu1,bogus"),
                     ("--split", "valid"), ("--dataset", "imagenet")],
        "topk": [("--k", "0"), ("--k", "-3"), ("--k", "abc"), ("--channels", "0"),
                 ("--channels", "-1"), ("--show", "-1"), ("--limit", "-5"), ("--layer", "bogus"), ("--layer", ""),
                 ("--split", "valid")],
        "features": [("--index", "-1"), ("--index", "1000000"), ("--channels", "0"), ("--channels", "-4"),
                     ("--layers", "bogus"), ("--limit", "-1")],
        "filters": [("--layer", "bogus"), ("--layer", "relu1"), ("--layer", "fc")],
    }
    for cmd, flags in flagcases.items():
        for flag, val in flags:
            argv = [cmd, run, "--out", out, "--limit", "40"]
            if cmd == "topk" and flag != "--layer":
                argv += ["--layer", "relu1"]
            cli("inspect", f"{cmd} {flag} {val}", [*argv, flag, val])
    cli("inspect", "topk --k 1000000000 (more than the images: all of them)", ["topk", run, "--out", out, "--limit",
                                                                               "40", "--layer", "relu1", "--k",
                                                                               "1000000000"], expect="ok")
    cli("inspect", "topk --k 1", ["topk", run, "--out", out, "--limit", "40", "--layer", "relu1", "--k", "1"],
        expect="ok", check="topk1")
    cli("inspect", "topk --layer ReLU (a type)", ["topk", run, "--out", out, "--limit", "40", "--layer", "ReLU"],
        expect="ok", timeout=max(timeout, 120))  # three layers of pictures: slow on a busy machine, not a hang
    for cmd in ("sparsity", "topk", "features"):
        argv = [cmd, run, "--out", out, "--limit", "40"] + (["--layer", "relu1"] if cmd == "topk" else [])
        for name in ("one", "mixed", "fifo", "bomb", "devzero", "outside", "rgb", "empty"):
            cli("inspect", f"{cmd} --dataset folder:{name}", [*argv, "--dataset", f"folder:{F / name}", "--split",
                                                              "all"], expect="ok" if name == "one" else "error")
        cli("inspect", f"{cmd} --dataset folder:mixed --size 0x0",
            [*argv, "--dataset", f"folder:{F / 'mixed'}", "--resize", "fit", "--size", "0x0", "--split", "all"])
        for sub in ("bomb", "devzero", "fifo", "trunc"):
            cli("inspect", f"{cmd} mnist --data-dir {sub}", [*argv, "--dataset", "mnist", "--data-dir", D / sub,
                                                             "--no-download"])
        cli("inspect", f"{cmd} --out /proc", [cmd, run, "--out", "/proc/forbidden", "--limit", "40"]
            + (["--layer", "relu1"] if cmd == "topk" else []))
        cli("inspect", f"{cmd} --out is a file", [cmd, run, "--out", im / "ok.png", "--limit", "40"]
            + (["--layer", "relu1"] if cmd == "topk" else []))
    for flag, val in (("--limit", "-1"), ("--filter", "bogus"), ("--dataset", f"folder:{F / 'one'}"),
                      ("--dataset", f"folder:{F / 'fifo'}"), ("--split", "valid")):
        cli("inspect", f"edges {flag} {Path(val).name}", ["edges", "--out", out, flag, val],
            expect="ok" if val.endswith("/one") else "error")  # inspecting one class is fine
    cli("inspect", "edges (sanity)", ["edges", "--out", out, "--limit", "50"], expect="ok")
    # -- matrix -----------------------------------------------------------------------------------------------------
    cli("matrix", "matrix 4x4 3x3", ["matrix", "--input", "4x4", "--kernel", "3x3"], expect="ok")
    cli("matrix", "matrix --json", ["matrix", "--input", "5x5", "--kernel", "3x3", "--json", "--stride", "2",
                                    "--padding", "1"], expect="ok")
    for args_ in (["--input", "0x0", "--kernel", "3x3"], ["--input", "4x4", "--kernel", "5x5"],
                  ["--input", "4x4", "--kernel", "0x0"], ["--input", "4x4", "--kernel", "3x3", "--stride", "0"],
                  ["--input", "4x4", "--kernel", "3x3", "--padding", "-1"],
                  ["--input", "4x4", "--kernel", "3x3", "--dilation", "0"],
                  ["--input", "4x4", "--kernel", "3x3", "--channels", "0:1"],
                  ["--input", "4x4", "--kernel", "3x3", "--channels", "3:2", "--groups", "2"],
                  ["--input", "4x4", "--kernel", "3x3", "--groups", "0"],
                  ["--input", "4x4", "--kernel", "3x3", "--padding", "9", "--padding-mode", "reflect"],
                  ["--input", "abc", "--kernel", "3x3"], ["--input", "4x4", "--kernel", "3x3", "--padding", "bogus"],
                  ["--input", "100000x100000", "--kernel", "3x3"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "nan"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "inf"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "-1"],
                  ["--input", "4x4", "--kernel", "3x3", "--max-memory", "0"],
                  ["--input", "64x64", "--kernel", "3x3", "--channels", "64:64", "--max-memory", "0.001"],
                  ["--input", "4x4", "--kernel", "3x3", "--png", "/proc/x.png"],
                  ["--input", "4x4", "--kernel", "3x3", "--seed", "-1"],
                  ["--input", "4x4"], ["--kernel", "3x3"], [],
                  ["--lipschitz"], [run, "--layer", "bogus"], [run, "--layer", "relu1"], [run, "--layer", "fc"],
                  [str(ws / "runs_bad" / "meta_shape_str"), "--layer", "conv1"]):
        cli("matrix", "matrix " + " ".join(Path(a).name if "/" in a else a for a in args_), ["matrix", *args_])
    cli("matrix", "matrix run --layer conv1", ["matrix", run, "--layer", "conv1"], expect="ok")
    cli("matrix", "matrix run --lipschitz", ["matrix", run, "--lipschitz"], expect="ok", timeout=max(timeout, 60))
    # -- the Python API ---------------------------------------------------------------------------------------------
    pre = ("import torch, numpy as np, convscope\nfrom convscope.data import load, ImageDataset, Normalization\n"
           "from convscope.inspect import topk, activation_sparsity, hook_count\nrun = convscope.load_run(WS/'run')\n"
           "ds = load('digits', 'test').subset(np.arange(40))\n")
    api = {
        "topk(tensor)": "result = topk(run.model, ds.images, ['relu1'])",
        "topk(float tensor 0..1)": "result = topk(run.model, ds.images.float() / 255, ['relu1'])",
        "topk(numpy array)": "result = topk(run.model, ds.images.numpy(), ['relu1'])",
        "topk(k=0)": "result = topk(run.model, ds, ['relu1'], k=0)",
        "topk(k=-3)": "result = topk(run.model, ds, ['relu1'], k=-3)",
        "topk(k=2.5)": "result = topk(run.model, ds, ['relu1'], k=2.5)",
        "topk(batch_size=0)": "result = topk(run.model, ds, ['relu1'], batch_size=0)",
        "topk(layers=[])": "result = topk(run.model, ds, [])",
        "topk(layers=5)": "result = topk(run.model, ds, 5)",
        "topk(norm='x')": "result = topk(run.model, ds, ['relu1'], norm='x')",
        "topk(model=None)": "result = topk(None, ds, ['relu1'])",
        "topk(empty dataset)": "result = topk(run.model, ds.subset(np.arange(0)), ['relu1'])",
        "topk(cifar-shaped)": "result = topk(run.model, ImageDataset(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), "
                              "torch.zeros(4, dtype=torch.int64), ('a',), 'x', 'test', 'mem'), ['relu1'])",
        "sparsity(tensor)": "result = activation_sparsity(run.model, ds.images, run.normalization)",
        "sparsity(list)": "result = activation_sparsity(run.model, [1, 2], run.normalization)",
        "sparsity(norm=None)": "result = activation_sparsity(run.model, ds, None)",
        "sparsity(threshold=nan)": "result = activation_sparsity(run.model, ds, run.normalization, "
                                   "threshold=float('nan'))",
        "sparsity(bins=0)": "result = activation_sparsity(run.model, ds, run.normalization, bins=0)",
        "sparsity(hist_range=(1,0))": "result = activation_sparsity(run.model, ds, run.normalization, hist_range=(1, "
                                      "0))",
        "edges(float tensor)": "from convscope.inspect import edge_experiment; "
                               "result = edge_experiment(ds.images.float() / 255)",
        "receptive_fields(int shape)": "from convscope.inspect import receptive_fields; "
                                       "result = receptive_fields(run.model, 28)",
        "list_layers(bad shape)": "from convscope.inspect import list_layers; result = list_layers(run.model, (0, 0))",
        "conv_matrix(max_memory=nan)": "from convscope.matrix import conv_matrix; "
                                       "result = conv_matrix(np.ones((1,1,3,3)), (1,4,4), max_memory=float('nan'))",
        "conv_matrix(max_memory=inf)": "from convscope.matrix import conv_matrix; "
                                       "result = conv_matrix(np.ones((1,1,3,3)), (1,4,4), max_memory=float('inf'))",
        "conv_matrix(weight='w')": "from convscope.matrix import conv_matrix; result = conv_matrix('w', (1,4,4))",
        "conv_matrix(input_shape='1x4x4')": "from convscope.matrix import conv_matrix; "
                                            "result = conv_matrix(np.ones((1,1,3,3)), '1x4x4')",
        "conv_matrix(huge)": "from convscope.matrix import conv_matrix; "
                             "result = conv_matrix(np.ones((512,512,3,3)), (512,512,512))",
        "conv_operator(input_shape=0)": "from convscope.matrix import conv_operator; "
                                        "result = conv_operator(np.ones((1,1,3,3)), (1,0,0))",
        "load(None)": "result = load(None)",
        "load('digits', 5)": "result = load('digits', 5)",
        "load(folder FIFO root)": "result = load('folder:' + str(WS/'folders'/'fifo_root'), 'all')",
        "load(folder one, train)": "result = load('folder:' + str(WS/'folders'/'one'), 'train')",
        "read_idx(FIFO)": "from convscope.data import read_idx; result = "
                          "read_idx(WS/'data'/'fifo'/'t10k-labels-idx1-ubyte.gz')",
        "read_idx(/dev/zero)": "from convscope.data import read_idx; result = read_idx('/dev/zero')",
        "read_idx(bomb)": "from convscope.data import read_idx; result = "
                          "read_idx(WS/'data'/'bomb'/'t10k-labels-idx1-ubyte.gz')",
        "ImageDataset(float images)": "result = ImageDataset(torch.rand(2,1,4,4), torch.zeros(2, dtype=torch.int64), "
                                      "('a',), 'x', 'test', 'mem')",
        "Normalization.apply(float images)": "x = ds.images.float() / 255; result = bool(torch.isfinite("
                                             "run.normalization.apply(x)).all()) and 'accepted floats'",
        "evaluate(tensor)": "from convscope.training.evaluate import evaluate; "
                            "result = evaluate(run.model, ds.images, run.normalization)",
        "evaluate(float dataset 0..1)": "from convscope.training.evaluate import evaluate; "
                                        "result = evaluate(run.model, ds.images.float() / 255, run.normalization)",
        "load_weights(FIFO)": "from convscope.training.checkpoint import load_weights; "
                              "result = load_weights(WS/'fifo.safetensors')",
        "load_weights(pickle)": "from convscope.training.checkpoint import load_weights; result = "
                                "load_weights(WS/'w.pt')",
        "load_state(garbage)": "from convscope.training.checkpoint import load_state; "
                               "result = load_state(WS/'garbage.safetensors')",
        "load_run(model.json deep)": "result = convscope.load_run(WS/'runs_bad'/'meta_deep')",
        "target.from_model_file(NoParams)": "from convscope.inspect import from_model_file; "
                                            "result = from_model_file(str(WS/'models.py') + ':NoParams', None, (1, "
                                            "28, 28), 'digits', "
                                            "WS/'_o').model",
    }
    # a result or a clear refusal: float images give the same zero counts (ReLU zeros do not depend on the scale);
    # a parameter-free model file may be refused with a message
    either = ("edges(float tensor)", "target.from_model_file(NoParams)")
    for name, code in api.items():
        py("api", name, pre + code, check="either" if name in either else None)
    py("api", "edges(uint8 tensor)", pre + "from convscope.inspect import edge_experiment; "
       "result = edge_experiment(ds.images)", expect="ok")
    py("api", "topk(layers='relu1') string is a name", pre + "r = topk(run.model, ds, 'relu1', k=2); "
       "result = list(r) == ['relu1'] and all(len(c) == 2 for c in r['relu1'])", expect="ok", check="true")
    py("api", "hooks removed after errors", pre + "import contextlib\nfor bad in (0, -1):\n"
       "    with contextlib.suppress(Exception): topk(run.model, ds, ['relu1'], k=bad)\n"
       "result = hook_count(run.model) == 0", expect="ok", check="true")
    py("api", "topk on a model without parameters", pre + "m = torch.nn.Sequential(torch.nn.ReLU()); "
       "result = len(topk(m, ds, ['0'], k=2)['0']) == 1", expect="ok", check="true")
    py("api", "conv_matrix within max_memory (tracemalloc)", "import tracemalloc, numpy as np\n"
       "from convscope.matrix import conv_matrix\ntracemalloc.start()\n"
       "m = conv_matrix(np.ones((16,8,3,3), np.float32), (8,64,64), padding=1, max_memory=2**30/8)\n"
       "result = tracemalloc.get_traced_memory()[1] <= 2**30/8", expect="ok", check="true")
    _wave2(ws, timeout, cli, py)
    return cases


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


def _wave2(ws: Path, timeout: float, cli, py) -> None:
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
