"""Weight digests: the digest of a run's final weights, the commands whose digests are recorded, and the record.

Bit-identity is a property of one machine: oneDNN picks different kernels on different CPUs (an AMD EPYC and an
Intel Xeon with AMX differ in the last bits), so a deterministic run repeats bit for bit on one machine but not
across machines. The tests therefore check bit-identity *within* the machine they run on (two runs of a command,
a killed run resumed against an uninterrupted one, a 0.1-layout checkpoint made in the same test); the digests
recorded in ``bench/results/weight_digests.json`` (by ``bench/weight_digests.py``) are checked only where the CPU,
its instruction-set flags and the torch version are those the record was made with (:func:`recorded_digest`).
"""

from __future__ import annotations

import json
from pathlib import Path

from convscope.benchmark import machine
from convscope.models import create_model, upgrade_state_dict
from convscope.models.weights import load_weights, named_values_sha256

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
RECORD = ROOT / "bench" / "results" / "weight_digests.json"

# Options whose defaults changed after 0.1 (stroke and blur were added, the model became fast2): passing these
# reproduces a 0.1 command (put them before a command's own --model: the last one given wins).
AS_IN_0_1 = ["--model", "fast", "--stroke", "0", "--blur", "0"]

# The 0.1 commands whose weights today's code must reproduce: name -> `convscope train` arguments as 0.1 took them.
CASES_0_1: dict[str, list[str]] = {
    "main_job_as_0_1": ["--deterministic"],
    "small_fast_2_epochs": ["--model-arg", "width=4", "--epochs", "2", "--train-subset", "512", "--batch-size", "64",
                            "--deterministic", "--checkpoint-every", "5", "--threads", "1"],
    "numpy_lenet5": ["--engine", "numpy", "--model", "lenet5", "--deterministic", "--epochs", "1",
                     "--train-subset", "1000"],
}


def today(case: str) -> list[str]:
    """Today's arguments for a 0.1 command: AS_IN_0_1 first, so the command's own --model (lenet5) wins."""
    return ["train", *AS_IN_0_1, *CASES_0_1[case]]


# name -> the `convscope` arguments whose final weights are recorded (each run in a fresh process, --out added).
CASES: dict[str, list[str]] = {"main_job": ["train", "--deterministic"], **{c: today(c) for c in CASES_0_1}}


def digest(run_dir: Path) -> str:
    """named-values SHA-256 of a run's final weights, in today's key names and state_dict order (a 0.1 run's
    numeric keys are mapped first): equal digests mean bit-identical weights."""
    meta = json.loads((run_dir / "model.json").read_text())
    c, h, w = meta["input_shape"]
    model = create_model(meta["model"], c, (h, w), meta["num_classes"], **meta.get("model_args", {}))
    state = upgrade_state_dict(model, load_weights(run_dir / "model.safetensors"))
    return named_values_sha256(state, model.state_dict().keys())


def machine_key(facts: dict | None = None) -> dict:
    """What decides which kernels run: the CPU model, its vector-ISA flags, and the torch build."""
    facts = facts or machine()
    return {"cpu": facts["cpu"], "cpu_flags": sorted(facts["cpu_flags"]), "torch": facts["torch"]}


def load_record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {"records": []}


def recorded_digest(case: str) -> str | None:
    """The digest recorded for ``case`` on a machine like this one, or None where no record matches this CPU."""
    key = machine_key()
    for rec in load_record()["records"]:
        if machine_key(rec["machine"]) == key and case in rec["digests"]:
            return rec["digests"][case]["named_values_sha256"]
    return None


def historical_digest(case: str) -> str | None:
    """The digest 0.1 recorded on the machine that made tests/fixtures/v0.1 (its CPU flags were not recorded)."""
    return load_record().get("historical", {}).get("digests", {}).get(case, {}).get("named_values_sha256")


# ---- convscope 0.1 itself, run from this clone's git history ----------------------------------------------------
# "Today's code trains bit for bit as 0.1 did" is checked by running 0.1's own code on the same machine, in the same
# test: no digest made on another CPU is needed.

V0_1_COMMIT = "ca172d1"   # convscope 0.1


def extract_v0_1(dest: Path) -> Path | None:
    """0.1's package source under ``dest`` (``git archive``), or None where this checkout has no git history."""
    import shutil
    import subprocess
    import tarfile

    if shutil.which("git") is None:
        return None
    r = subprocess.run(["git", "archive", "--format=tar", V0_1_COMMIT, "convscope"], cwd=ROOT, capture_output=True)
    if r.returncode != 0:
        return None
    tar = dest / "v0_1.tar"
    tar.write_bytes(r.stdout)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    return dest


def run_v0_1(tree: Path, args: list[str], out: Path, kill_at_step: int | None = None):
    """``convscope ARGS --out OUT`` with 0.1's code (its own SIGKILL fault point, ``CONVSCOPE_FAULT``, if asked)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("CONVSCOPE_FAULT", None)
    if kill_at_step is not None:
        env["CONVSCOPE_FAULT"] = f"step:{kill_at_step}"
    return subprocess.run([sys.executable, "-m", "convscope", *args, "--quiet", "--out", str(out)], cwd=out.parent,
                          env=env, capture_output=True, text=True, timeout=1800)
