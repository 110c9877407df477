"""The findings of issue 28 left open after its third round, one area per class (cases of our own, beyond the
ones reported): the tune sampler seed and study folder (open-tune), unbounded work (open-bounds), outputs that
replaced a file not ours (open-replace), half-written sets of files (open-sets), a model file importing its
neighbour (open-modelfile), blank images for explain (open-blank), the short lr-find sweep and tensorboard over
several runs (open-multi). Run them with ``--only open-``."""

from __future__ import annotations

from pathlib import Path

from hostile_workspace import TINY

from ._table import Table, _cli, _refused

LIMIT = 8192   # bytes: topk's JSON (about 2 KB) fits, its pictures do not (the half-set case)
_LIMITED = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))\n")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.is_dir() else {}


def _unchanged(rel: str, content: dict[str, bytes] | bytes):
    def holds(ws):
        p = ws / "_o" / rel
        now = p.read_bytes() if isinstance(content, bytes) and p.is_file() else _files(p)
        return None if now == content else f"{rel} changed: {sorted(now)[:4] if isinstance(now, dict) else now[:40]}"
    return holds


def _absent(rel: str):
    def holds(ws):
        p = ws / "_o" / rel
        return f"{rel} left behind: {sorted(_files(p))[:4]}" if p.exists() else None
    return holds


def _too_few(rc, out, err, ws):
    if rc == 1 and "too few to judge" in out and "no learning rate trains" not in out:
        return "correct", "a 10-step sweep: too few steps to judge (exit 1, no suggestion)"
    if rc == 1:
        return "wrong result", "a short sweep judged the model: " + out.strip()[-150:]
    return None


def _tb_kept(rc, out, err, ws):
    if "REPLACED" in err:
        return "loss", "the good run's tensorboard events were replaced before the bad path was refused"
    return None


SMALL = ["--train-subset", "64", "--model-arg", "width=4", "--threads", "1", "--batch-size", "32"]
BOUNDS = ((["train", "--epochs", "1000000000"], "--epochs must lie in [1, 100000]"),
          (["train", "--check", "--check-batch", "100000"], "--check-batch: must be [1, 1024]"),
          (["train", "--check", "--check-steps", "1000000000"], "--check-steps: must be [1, 10000]"),
          (["tune", "--trials", "1000000000"], "--trials: must be [1, 10000]"),
          (["lr-find", "--steps", "1000000000"], "--steps: must be [5, 10000]"),
          (["data", "show", "digits", "--per-class", "1000000000"], "--per-class: must be [1, 64]"),
          (["experiment", "refine", "RUN", "--bootstrap", "1000000000"], "--bootstrap: must be at most 100,000"))

CHECKS = {
    "open:seed": _refused("--sampler-seed", holds=_absent("open-seed")),
    **{f"open:bound-{i}": _refused(words) for i, (_, words) in enumerate(BOUNDS)},
    "open:space-epochs": _refused("open-space-epochs.yaml: epochs: 1000000000 is not a valid epochs"),
    "open:out-run": _refused("is a training run's folder", holds=_absent("open-run-copy/study.db")),
    "open:out-other": _refused("holds no convscope study", holds=_unchanged("open-other", {"thesis.tex": b"keep"})),
    "open:report-notes": _refused("is not a convscope report", holds=_unchanged("open-rep/notes.txt", b"my notes")),
    "open:show-user": _refused("is not a picture an earlier predict --show wrote",
                               holds=_unchanged("open-show/ok.prepared.png", b"mine")),
    "open:show-twins": _refused("would both write"),
    "open:set-topk": _refused("cannot write", "File too large", holds=_absent("open-set-topk")),
    "open:set-sparsity": _refused("cannot write", "File too large", holds=_absent("open-set-sparsity")),
    "open:set-restore": _refused("cannot write", holds=_unchanged("open-set-old", {"topk-relu1.json": b"earlier"})),
    "open:sibling-syntax": _refused("helpers.py, line 1 (imported by your model file)"),
    "open:blank": _refused("no ink found", holds=_absent("open-blank")),
    "open:too-few": _too_few,
    "open:tb-multi": lambda rc, out, err, ws: _tb_kept(rc, out, err, ws) or _refused("no config.json")(rc, out,
                                                                                                   err, ws),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    run, out, im, slow = t.run, t.out, t.images, t.slow
    # -- open-tune: the sampler seed (numpy's range, the one seed check) and the study folder
    for seed in ("-1", "4294967296", "1e9"):
        t.cli("open-tune", f"tune --sampler-seed {seed}", ["tune", "--trials", "1", "--sampler-seed", seed, "--out",
                                                          f"{out}/open-seed"], check="open:seed")
    t.cli("open-tune", "tune --sampler-seed 4294967295 (valid: a trial runs)",
          ["tune", "--trials", "1", "--sampler-seed", "4294967295", "--out", f"{out}/open-seed-ok", "--quiet",
           "--schedule", "constant", *TINY[:-1]], expect="ok", timeout=slow * 2)
    t.py("open-tune", "tune --out RUN (a training run's folder)",
         f"import shutil\nshutil.copytree({run!r}, {out + '/open-run-copy'!r})\n"
         + _cli(["tune", "--trials", "1", "--out", f"{out}/open-run-copy"]), check="open:out-run", timeout=slow)
    t.py("open-tune", "tune --out FOLDER (other files in it)",
         f"import os\nos.makedirs({out + '/open-other'!r})\nopen({out + '/open-other/thesis.tex'!r}, 'w')"
         ".write('keep')\n" + _cli(["tune", "--trials", "1", "--out", f"{out}/open-other"]), check="open:out-other")
    # -- open-bounds: counts that were unbounded
    for i, (argv, _) in enumerate(BOUNDS):
        argv = [run if a == "RUN" else a for a in argv]
        t.cli("open-bounds", " ".join(a for a in argv if a != run), [*argv, "--out", f"{out}/open-bound-{i}.png"]
              if argv[0] not in ("train", "experiment") else argv, check=f"open:bound-{i}", timeout=slow)
    space = f"{t.configs}/open-space-epochs.yaml"
    t.py("open-bounds", "tune --space (epochs up to 1e9)",
         f"open({space!r}, 'w').write('epochs: {{type: int, low: 1, high: 1000000000}}\\n')\n"
         + _cli(["tune", "--trials", "1", "--space", space, "--out", f"{out}/open-space"]), check="open:space-epochs")
    # -- open-replace: outputs never replace a file that is not an earlier output of ours
    t.py("open-replace", "report -o notes.txt",
         f"import os\nos.makedirs({out + '/open-rep'!r})\n"
         f"open({out + '/open-rep/notes.txt'!r}, 'w').write('my notes')\n"
         + _cli(["report", run, "-o", f"{out}/open-rep/notes.txt"]), check="open:report-notes", timeout=slow)
    t.py("open-replace", "predict --show over the user's NAME.prepared.png",
         f"import os, shutil\nos.makedirs({out + '/open-show'!r})\nshutil.copy({str(im / 'ok.png')!r}, "
         f"{out + '/open-show'!r})\nopen({out + '/open-show/ok.prepared.png'!r}, 'w').write('mine')\n"
         + _cli(["predict", run, f"{out}/open-show/ok.png", "--show"]), check="open:show-user", timeout=slow)
    t.py("open-replace", "predict --show photo.png photo.jpg (one picture name)",
         f"import os\nfrom PIL import Image\nos.makedirs({out + '/open-twins'!r})\nimg = Image.open("
         f"{str(im / 'ok.png')!r})\nimg.save({out + '/open-twins/p.png'!r})\nimg.convert('L').save("
         f"{out + '/open-twins/p.jpg'!r})\n"
         + _cli(["predict", run, f"{out}/open-twins/p.png", f"{out}/open-twins/p.jpg", "--show"]),
         check="open:show-twins", timeout=slow)
    # -- open-sets: a set of files is written whole or not at all
    for name, argv in (("topk", ["topk", run, "--layer", "relu1", "--k", "2", "--limit", "40"]),
                       ("sparsity", ["sparsity", run, "--limit", "40"])):
        t.py("open-sets", f"{name} past a {LIMIT}-byte size limit (JSON fits, picture does not)",
             _cli([*argv, "--out", f"{out}/open-set-{name}"], _LIMITED), check=f"open:set-{name}", timeout=slow)
    t.py("open-sets", "topk past the limit over an earlier result",
         f"import os\nos.makedirs({out + '/open-set-old'!r})\nopen({out + '/open-set-old/topk-relu1.json'!r}, 'w')"
         ".write('earlier')\n" + _cli(["topk", run, "--layer", "relu1", "--k", "2", "--limit", "40", "--out",
                                       f"{out}/open-set-old"], _LIMITED), check="open:set-restore", timeout=slow)
    # -- open-modelfile: a model file importing a module beside it
    model = ("from torch import nn\nfrom helpers import block\nclass Net(nn.Module):\n    def __init__(self):\n"
             "        super().__init__()\n        self.b = block(1, 4)\n        self.fc = nn.Linear(4 * 28 * 28, 10)\n"
             "    def forward(self, x):\n        return self.fc(self.b(x).flatten(1))\n")
    good = ("from torch import nn\ndef block(i, o):\n"
            "    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU())\n")
    for name, helper, kw in (("sibling", good, {"expect": "ok"}), ("sibling-syntax", "def block(:\n",
                                                                     {"check": "open:sibling-syntax"})):
        d = f"{out}/open-{name}"
        t.py("open-modelfile", f"--model-file importing {'a' if name == 'sibling' else 'a broken'} helpers.py",
             f"import os\nos.makedirs({d!r})\nopen({d + '/mymodel.py'!r}, 'w').write({model!r})\n"
             f"open({d + '/helpers.py'!r}, 'w').write({helper!r})\n"
             + _cli(["layers", "--model-file", f"{d}/mymodel.py:Net"]), timeout=slow, **kw)
    # -- open-blank: explain refuses an image without ink, as predict does
    for value in (0, 255):
        p = f"{out}/open-blank-{value}.png"
        t.py("open-blank", f"explain on an all-{value} image",
             f"import numpy as np\nfrom PIL import Image\nImage.fromarray(np.full((28, 28), {value}, np.uint8))"
             f".save({p!r})\n" + _cli(["explain", run, p, "--method", "saliency", "--out", f"{out}/open-blank"]),
             check="open:blank", timeout=slow)
    # -- open-multi: a short lr-find sweep; tensorboard over a good and a bad run
    t.cli("open-multi", "lr-find --steps 10", ["lr-find", "--steps", "10", "--out", f"{out}/open-lr.png", *SMALL],
          check="open:too-few", timeout=slow)
    tb = f"{out}/open-tb"
    events = f"os.path.join({tb!r}, 'tensorboard')"
    inodes = f"{{p: os.stat(os.path.join({events}, p)).st_ino for p in os.listdir({events})}}"
    t.py("open-multi", "tensorboard --force GOOD BAD",
         f"import os, shutil, sys\nshutil.copytree({run!r}, {tb!r})\n"
         "from convscope.training.tensorboard import convert\n"
         f"convert({tb!r})\nbefore = {inodes}\nfrom convscope.cli import main\n"
         f"rc = main(['tensorboard', '--force', {tb!r}, {out + '/open-nope'!r}])\n"
         f"if {inodes} != before:\n    print('REPLACED', file=sys.stderr)\nraise SystemExit(rc)\n",
         check="open:tb-multi", timeout=slow)
