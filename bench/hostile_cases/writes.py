"""Writes and settings (issue 28, classes 1, 4, 5, 6, 9): every command that writes files under a file-size
limit (EFBIG, handled as a full disk is), with a file where its folder should be, with standard output on
/dev/full or a closed pipe; training settings that cannot make sense; config keys given twice; seeds out of range;
--nproc combinations the workers would refuse. Cases of our own design, written for the third round."""

from __future__ import annotations

from hostile_workspace import TINY

from ._table import Table

LIMIT = 8192   # bytes: above what the commands print, below every picture and report they write

# the case's own process only: SIGXFSZ ignored, so a write past the limit fails with EFBIG instead of killing it
_LIMITED = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))\n")


def _cli_then(argv: list[str], before: str) -> str:
    return (f"import sys\n{before}from convscope.cli import main\nrc = main({argv!r})\n"
            "if rc:\n    raise SystemExit(rc)\n")


def _nothing_partial(folder: str):
    """A refused write names the file and the cause, and leaves no temporary file, probe or hidden folder in
    ``folder`` (relative to the workspace's output folder _o)."""
    def check(rc, out, err, ws):
        left = [p.name for p in (ws / "_o" / folder).rglob("*") if p.name.endswith(".part") or ".write-" in p.name
                or (p.name.startswith(".") and p.is_dir())]
        if left:
            return "loss", f"partial files left behind: {left[:3]}"
        if rc == 2 and not any(w in err for w in ("cannot write", "cannot save", "not a folder")):
            return "wrong result", "refused without naming the file it could not write: " + err.strip()[-150:]
        if rc == 0:
            return "correct", f"everything fitted under {LIMIT} bytes"
        return None
    return check


def _quiet_pipe(rc, out, err, ws):
    if rc == 1 and not err.strip():
        return "correct", "closed pipe: ended quietly, exit 1"
    return None


WRITERS = ("features", "topk", "sparsity", "filters", "edges", "project", "visualize", "explain", "predict")
CHECKS = {"quiet pipe": _quiet_pipe, "partial:report": _nothing_partial("fsize-report"),
          "partial:train": _nothing_partial("fsize-train"),
          **{f"partial:{w}": _nothing_partial(f"fsize-{w}") for w in WRITERS},
          **{f"partial-way:{w}": _nothing_partial(f"in-the-way-{w}") for w in WRITERS}}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _writes(t)
    _settings(t)


def _writes(t: Table) -> None:
    run, out, im = t.run, t.out, t.images
    commands = {
        "features": ["features", run, "--index", "0"],
        "topk": ["topk", run, "--layer", "relu1", "--k", "3", "--limit", "40"],
        "sparsity": ["sparsity", run, "--limit", "40"],
        "filters": ["filters", run],
        "edges": ["edges", "--limit", "40"],
        "project": ["project", run, "--layer", "relu1", "--limit", "40"],
        "visualize": ["visualize", run, "--layer", "relu1", "--steps", "2", "--no-natural"],
        "explain": ["explain", run, str(im / "ok.png"), "--method", "saliency"],
        "predict": ["predict", run, "--show"],
    }
    for name, argv in commands.items():
        folder, inway = f"{out}/fsize-{name}", f"{out}/in-the-way-{name}"
        mk = f"import os, shutil\nos.makedirs({folder!r}, exist_ok=True)\nos.makedirs({inway!r}, exist_ok=True)\n"
        if name == "predict":   # --show writes beside the image: the image goes into the folder under test
            t.py("writes", f"predict --show past a {LIMIT}-byte file-size limit",
                 _cli_then([*argv, f"{folder}/ok.png"], mk + f"shutil.copy({str(im / 'ok.png')!r}, {folder!r})\n"
                           + _LIMITED), check=f"partial:{name}", timeout=t.slow)
            continue
        t.py("writes", f"{name} past a {LIMIT}-byte file-size limit", _cli_then([*argv, "--out", folder],
                                                                                 mk + _LIMITED),
             check=f"partial:{name}", timeout=t.slow)
        t.py("writes", f"{name} with a file where the folder should be",
             _cli_then([*argv, "--out", f"{inway}/file/sub"], mk + f"open({inway + '/file'!r}, 'w').close()\n"),
             check=f"partial-way:{name}", timeout=t.slow)
    t.py("writes", f"report past a {LIMIT}-byte file-size limit",
         _cli_then(["report", run, "-o", f"{out}/fsize-report/r.html"], _LIMITED),
         check="partial:report", timeout=t.slow)
    t.py("writes", f"train past a {LIMIT}-byte file-size limit",
         _cli_then(["train", "--out", f"{out}/fsize-train/run", *TINY], _LIMITED),
         check="partial:train", timeout=t.slow)
    full = "import os\nfd = os.open('/dev/full', os.O_WRONLY)\nos.dup2(fd, 1)\n"
    for argv in (["models"], ["layers", run], ["eval", run], ["matrix", "--input", "6x6",
                                                                                  "--kernel", "3x3"]):
        t.py("writes", f"{argv[0]} > /dev/full", _cli_then(argv, full), timeout=t.slow)
    pipe = "import os\nr, w = os.pipe()\nos.close(r)\nos.dup2(w, 1)\n"
    for argv in (["models"], ["layers", run], ["eval", run]):
        t.py("writes", f"{argv[0]} | (reader gone)", _cli_then(argv, pipe), check="quiet pipe", timeout=t.slow)


def _settings(t: Table) -> None:
    out, cfgs = t.out, t.configs
    train = ["train", "--out", f"{out}/settings-run", *TINY]
    for flags in (["--warmup-epochs", "1"], ["--warmup-epochs", "7.5", "--epochs", "3"], ["--momentum", "1"],
                  ["--momentum", "1.5"], ["--momentum", "-0.1"], ["--seed", "-1"], ["--seed", str(2**63)],
                  ["--seed", str(10**23)], ["--seed", "1e23"], ["--nproc", "2", "--engine", "numpy"],
                  ["--nproc", "2", "--engine", "numpy", "--seed", "-5"]):
        t.cli("settings", "train " + " ".join(flags), [*train, *flags])
    files = {"dup.yaml": "lr: 0.1\nepochs: 1\nlr: 0.5\n", "dup-section.yaml": "optim:\n  lr: 0.1\noptim:\n  lr: 1\n",
             "dup-nested.yml": "optim:\n  momentum: 0.5\n  momentum: 0.9\n", "dup.json": '{"lr": 0.1, "lr": 0.2}',
             "dup-nested.json": '{"optim": {"lr": 0.1, "lr": 0.3}}', "seed-huge.yaml": f"seed: {10**23}\n",
             "seed-neg.json": '{"seed": -7}', "seed-float.yaml": "seed: 1.0e+23\n",
             "warmup.yaml": "epochs: 2\nwarmup_epochs: 2\n", "momentum.json": '{"optim": {"momentum": 3}}'}
    for name, text in files.items():
        path = f"{cfgs}/h28a-{name}"
        make = f"open({path!r}, 'w').write({text!r})\n"
        t.py("settings", f"train --config {name}", _cli_then([*train, "--config", path], make))
    api = ("import convscope, torch\nfrom convscope.inspect import attribute\nrun = convscope.load_run(WS/'run')\n"
           "x = torch.zeros(1, 1, 28, 28)\n")
    for seed in ("-1", str(2**64), "1e23", "True"):
        t.py("settings", f"attribute(seed={seed})", api + f"result = attribute(run.model, x, 'saliency', seed={seed})")
        t.py("settings", f"convscope.train(seed={seed})", f"import convscope\nconvscope.train({{'seed': {seed}}}, "
             "out=WS/'_o'/'api-seed', progress=False)\n")
    t.cli("settings", "train (sanity: warm-up shorter than the run, momentum 0.95)",
          [*train[:2], f"{out}/settings-ok", *TINY, "--warmup-epochs", "0.5", "--momentum", "0.95", "--seed",
           str(2**63 - 1)], expect="ok", timeout=t.slow)
