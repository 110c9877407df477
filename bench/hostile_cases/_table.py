"""What every unit of the case table shares: the Case record, the Table the units add their cases to (with the
workspace's paths named once), the checks several units use, and the preambles of the Python-API cases."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


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


class Table:
    """The cases in the order the units add them; a repeated id gets '#2', '#3'... The workspace's parts are
    attributes so that every unit names them the same way."""

    def __init__(self, ws: Path, timeout: float) -> None:
        self.ws, self.timeout = ws, timeout
        self.cases: list[Case] = []
        self._seen: dict[str, int] = {}
        self.out = str(ws / "_o")              # where the commands write
        self.run = str(ws / "run")             # a good tiny run
        self.folders = ws / "folders"          # class-folder datasets, good and hostile
        self.data = ws / "data"                # --data-dir contents: bombs, FIFOs, /dev/zero, truncated, junk
        self.images = ws / "images"            # image files for predict / explain
        self.configs = ws / "configs"          # config files
        self.kernels = ws / "kernels"          # edges --kernel files
        self.bad_runs2 = ws / "runs_bad2"      # run directories broken in the ways the web/report side reads
        self.models = str(ws / "models.py")    # user model classes: Good, NoParams, Broken, NotModule
        self.good = ["--model-file", f"{self.models}:Good", "--weights", str(ws / "good.safetensors")]
        self.slow = max(timeout, 90)
        self.stuck = 60  # inputs that could block (FIFOs): a quick refusal is due, waiting longer proves nothing

    def add(self, area: str, cid: str, kind: str = "cli", **kw) -> None:
        self._seen[cid] = self._seen.get(cid, 0) + 1
        cid = cid if self._seen[cid] == 1 else f"{cid}#{self._seen[cid]}"
        kw.setdefault("timeout", self.timeout)
        self.cases.append(Case(cid, area, kind, **kw))

    def cli(self, area: str, cid: str, argv: list, **kw) -> None:
        self.add(area, cid, "cli", argv=[str(a) for a in argv], **kw)

    def py(self, area: str, cid: str, code: str, **kw) -> None:
        self.add(area, cid, "py", code=code, **kw)


# ---- checks several units use ---------------------------------------------------------------------------------

def _either(rc, out, err, ws):
    return ("correct", "accepted (a clear refusal would do as well)") if rc == 0 else None


def _hint(rc, out, err, ws):
    if rc == 2 and "named by role" not in err:
        last = (err.strip().splitlines() or [""])[-1][:150]
        return "wrong result", "refused, but without the 0.1 renaming hint: " + last
    return None


def _refused(*words: str, holds=None, holds_if_accepted: bool = False):
    """A refusal (exit 2) must name each of ``words`` (WS/ stands for the workspace). ``holds(ws)``: what must
    still be true of the files afterwards, a note when it is not (a loss); checked after a refusal, and after an
    exit 0 too with ``holds_if_accepted``. Anything else is judged by the case's expectation (None)."""
    def check(rc, out, err, ws):
        if holds is not None and (rc != 0 or holds_if_accepted):
            broken = holds(ws)
            if broken:
                return "loss", broken
        if rc == 2:
            missing = [w for w in (w.replace("WS/", f"{ws}/") for w in words) if w not in err]
            if missing:
                return "wrong result", f"refused without naming {missing[0]!r}: " + err.strip()[-150:]
        return None
    return check


def _no_nan_out(rc, out, err, ws):
    if rc == 0 and re.search(r"\bnan\b", out.lower()):
        line = next(ln for ln in out.splitlines() if re.search(r"\bnan\b", ln.lower()))
        return "wrong result", f"succeeded with NaN values: {line.strip()[:120]}"
    return None


def _result_is(expected: str):
    def check(rc, out, err, ws):
        if rc == 0:
            return ("correct", "") if f"RESULT: {expected}" in out else ("wrong result", out.strip()[-120:])
        return None
    return check


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


def _cli(argv: list, before: str = "") -> str:
    """A py case that runs the CLI in-process after ``before`` (a stub), exiting with its status."""
    return (f"import sys\n{before}from convscope.cli import main\nrc = main({[str(a) for a in argv]!r})\n"
            "if rc:\n    raise SystemExit(rc)\n")


CHECKS = {"either": _either, "hint": _hint, "no_nan": _no_nan_out, "true": _result_is("True")}


# ---- preambles of the Python-API cases (WS: the workspace) ---------------------------------------------------

PRE_CORE = ("import torch, numpy as np, convscope\nfrom convscope.data import load, ImageDataset, Normalization\n"
            "from convscope.inspect import topk, activation_sparsity, hook_count\nrun = convscope.load_run(WS/'run')\n"
            "ds = load('digits', 'test').subset(np.arange(40))\n")
PRE_TOOLS = ("import torch, numpy as np, convscope\nfrom convscope.data import load\n"
             "from convscope.inspect import visualize, project, projections, attribute, audit_method, "
             "receptive_field_report\nfrom convscope.matrix.report import describe_conv\n"
             "from convscope.matrix.spectrum import layer_spectrum\n"
             "from convscope.experiments import refine, RefineConfig\n"
             "run = convscope.load_run(WS/'run')\nds = load('digits', 'test').subset(np.arange(40))\n"
             "x = run.preprocess(ds.images[:4])\nS = (1, 28, 28)\nW = np.ones((1, 1, 3, 3))\n"
             "FAST = dict(train_limit=100, test_limit=50, seeds=(0,), variants=('top',), steps=1, eval_every=1, k=1, "
             "bn=('frozen',), bn_images=20)\n")
