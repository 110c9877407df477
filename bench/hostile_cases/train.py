"""Training: train flags and folders, config files, kills and two trainings on one --out, --nproc."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hostile_workspace import PY, TINY

from ._table import PRE_CORE, Table, _cli


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


def _silent_nan(rc, out, err, ws):
    if rc == 0:
        return "wrong result", "non-finite value accepted; the run 'succeeded'"
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


STUB_TORCHRUN = ("import subprocess\nimport convscope.distributed.launch as L\nspawned = []\n"
                 "class _Sub:\n    @staticmethod\n    def run(cmd, **kw):\n        spawned.append(list(cmd))\n"
                 "        return subprocess.CompletedProcess(cmd, 0)\nL.subprocess = _Sub\n")


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


CHECKS = {"escaped": _escaped, "abs": _abs, "pwned": _pwned, "silent": _silent_nan,
          "nproc_refuse": _nproc(True), "nproc_ok": _nproc(False)}
SCENARIOS = {"concurrent_out": _concurrent_out, "kill_resume": _kill_resume}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _train(t)
    _config(t)
    _kills(t)
    _nproc(t)
    _api(t)


def _train(t: Table) -> None:
    """`train` with impossible numbers, hostile folders and --data-dir, --out, --resume."""
    ws, timeout, cli, out, run, F, D, im = t.ws, t.timeout, t.cli, t.out, t.run, t.folders, t.data, t.images
    C = t.configs
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


def _config(t: Table) -> None:
    """`train --config` files: YAML bombs and tags, run names that leave --runs-dir, odd files."""
    timeout, cli, py, out, C = t.timeout, t.cli, t.py, t.out, t.configs
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


def _kills(t: Table) -> None:
    """Several processes: SIGKILL mid-run then --resume; two trains on one --out."""
    timeout, add = t.timeout, t.add
    add("kills", "SIGKILL mid-run, then --resume", "scenario", scenario="kill_resume", expect="ok",
        timeout=max(timeout, 240))
    add("kills", "two trains on one --out at once", "scenario", scenario="concurrent_out",
        timeout=max(timeout, 240))


def _nproc(t: Table) -> None:
    """`train --nproc` (torchrun stubbed: the command it would start is recorded, nothing spawned)."""
    py, out, slow = t.py, t.out, t.slow
    for val in ("0", "-1", "1000", "abc", "2.5", "1", "2"):
        argv = ["train", "--nproc", val, "--out", f"{out}/np{val}", *TINY]
        sane = val in ("1", "2")
        py("nproc", f"train --nproc {val}" + (" (sanity)" if sane else ""),
           STUB_TORCHRUN + f"import sys\nsys.argv = ['convscope'] + {argv!r}\n" + _cli(argv)
           + "result = ('spawned', int(spawned[0][spawned[0].index('--nproc_per_node') + 1])) "
           "if spawned else ('ran here', rc)\n", expect="ok" if sane else "error",
           check="nproc_ok" if sane else "nproc_refuse", timeout=slow)


def _api(t: Table) -> None:
    """The Python API: 'api' cases."""
    py = t.py
    pre = PRE_CORE
    api = {
        "evaluate(tensor)": "from convscope.training.evaluate import evaluate; "
                            "result = evaluate(run.model, ds.images, run.normalization)",
        "evaluate(float dataset 0..1)": "from convscope.training.evaluate import evaluate; "
                                        "result = evaluate(run.model, ds.images.float() / 255, run.normalization)",
    }
    for name, code in api.items():
        py("api", name, pre + code)
