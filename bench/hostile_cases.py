"""The hostile sweep's case table: what each case runs, what it should do, and the checks and scenarios (wave 1
here; wave 2's in hostile_cases_wave2.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hostile_workspace import PY, TINY, make_workspace
from hostile_cases_wave2 import WAVE2_CHECKS, add_wave2_cases

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
CHECKS.update(WAVE2_CHECKS)




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
        "conv_matrix(max_memory=nan)": "from convscope.conv import conv_matrix; "
                                       "result = conv_matrix(np.ones((1,1,3,3)), (1,4,4), max_memory=float('nan'))",
        "conv_matrix(max_memory=inf)": "from convscope.conv import conv_matrix; "
                                       "result = conv_matrix(np.ones((1,1,3,3)), (1,4,4), max_memory=float('inf'))",
        "conv_matrix(weight='w')": "from convscope.conv import conv_matrix; result = conv_matrix('w', (1,4,4))",
        "conv_matrix(input_shape='1x4x4')": "from convscope.conv import conv_matrix; "
                                            "result = conv_matrix(np.ones((1,1,3,3)), '1x4x4')",
        "conv_matrix(huge)": "from convscope.conv import conv_matrix; "
                             "result = conv_matrix(np.ones((512,512,3,3)), (512,512,512))",
        "conv_operator(input_shape=0)": "from convscope.conv import conv_operator; "
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
       "from convscope.conv import conv_matrix\ntracemalloc.start()\n"
       "m = conv_matrix(np.ones((16,8,3,3), np.float32), (8,64,64), padding=1, max_memory=2**30/8)\n"
       "result = tracemalloc.get_traced_memory()[1] <= 2**30/8", expect="ok", check="true")
    add_wave2_cases(ws, timeout, cli, py)
    return cases
