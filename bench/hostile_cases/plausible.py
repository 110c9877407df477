"""Training settings judged against the data (issue 28, class 4 continued): augmentations that cannot make sense
on 28 px digits (refused, naming the flag or the config file, the image size and the valid range), unusual
settings (warned about once, in words, and trained), and range errors from config files, recorded run configs
and tune spaces (naming the file and the key)."""

from __future__ import annotations

import json

from hostile_workspace import TINY

from ._table import Table, _cli, _refused


def _warns(text: str):
    """Exit 0 with ``convscope: warning: TEXT...`` exactly once on stderr (and nothing else from Python)."""
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        n = err.count(f"convscope: warning: {text}")
        if n != 1:
            return "wrong result", f"trained with {n} warnings {text!r} (one is due): " + err.strip()[-120:]
        if "Warning:" in err:   # Python's own format: file:line: SettingWarning: ...
            return "wrong result", "the warning printed in Python's format, not in words"
        return "correct", f"warned: {text}"
    return check


def _quiet(rc, out, err, ws):
    """A valid, usual setting: it trains without any warning."""
    if rc == 0 and "warning" in err.lower():
        return "wrong result", "warned about a usual setting: " + err.strip()[-150:]
    return None


# refused on 28x28 digits: the flag, the size and the valid range named
REFUSED = ((["--translate", "1000"], ("--translate", "28x28", "0 to 13 px")),
           (["--translate", "14"], ("--translate", "0 to 13 px")),
           (["--cutout", "28"], ("--cutout", "28x28", "0 to 27 px")),
           (["--cutout", "100000"], ("--cutout", "0 to 27 px")),
           (["--scale", "10"], ("--scale", "28x28", "0 to 6")),
           (["--scale", "7"], ("--scale", "0 to 6")),
           (["--aspect", "10", "--scale", "2"], ("--aspect", "28x28", "0 to 4.44")),
           (["--scale", "3", "--aspect", "3"], ("--aspect", "with a zoom", "0 to 2.06")),
           (["--rotate", "91"], ("--rotate", "6s and 9s", "0 to 90")),
           (["--rotate", "180"], ("--rotate", "0 to 90")),
           (["--threads", "1000"], ("--threads: must be at most", "CPU count")))
# the same from config files, and range errors from files: the file and the key named
FILES = {"plaus-translate.yaml": ("translate: 100\n", ("plaus-translate.yaml: translate:", "0 to 13 px")),
         "plaus-cutout.json": ('{"augment": {"cutout": 64}}', ("plaus-cutout.json: cutout:", "0 to 27 px")),
         "plaus-scale.toml": ("[augment]\nscale = 9.0\n", ("plaus-scale.toml: scale:", "28x28")),
         "plaus-epochs.yaml": ("epochs: -1\n", ("plaus-epochs.yaml: epochs must be at least 1",)),
         "plaus-epochs-section.yaml": ("schedule:\n  epochs: 0\n", ("plaus-epochs-section.yaml: epochs",)),
         "plaus-lr.json": ('{"optim": {"lr": -0.5}}', ("plaus-lr.json: lr must not be negative",)),
         "plaus-best.yaml": ("optim:\n  momentum: 1.5\n", ("plaus-best.yaml: momentum must lie in [0, 1)",)),
         "plaus-warmup.yaml": ("epochs: 2\nwarmup_epochs: 2\n", ("plaus-warmup.yaml: warmup_epochs 2",)),
         "plaus-exp-seed.yaml": ("seed: 1e23\n", ("plaus-exp-seed.yaml: seed",))}
# tune spaces whose ends a trial would be refused for: refused before the study starts, naming the file
SPACES = (("plaus-space-translate.yaml", "translate: {type: int, low: 0, high: 20}\n",
           ("plaus-space-translate.yaml: translate = 20 on this study's data", "0 to 13 px")),
          ("plaus-space-zoom.yaml", "scale: {type: float, low: 0.0, high: 3.0}\naspect: {type: float, low: 0.0, "
           "high: 3.0}\n", ("plaus-space-zoom.yaml: scale = 3.0, aspect = 3.0",)),
          ("plaus-space-epochs.yaml", "epochs: {type: int, low: -3, high: 2}\n",
           ("plaus-space-epochs.yaml: epochs: -3 is not a valid epochs",)))
OTHERS = {"flag wins": ("--translate: a shift of up to 50 px",),
          "resume": ("plaus-badrun/config.json: lr must not be negative",), "api": ("translate: a shift",)}
# unusual settings: warned once, in words, and the run trains
WARNED = ((["--train-subset", "3", "--batch-size", "3"], "train_subset 3 is fewer images than the 10"),
          (["--train-subset", "10", "--val-fraction", "0.5", "--batch-size", "5"],
           "only 5 of the 10 classes have a training image"),
          (["--batch-size", "100"], "batch_size 100 is larger than the training set (64 images)"),
          (["--epochs", "2", "--schedule", "cosine", "--warmup-epochs", "1.5"],
           "warmup_epochs 1.5 is half or more of the run"),
          (["--warmup-epochs", "0.2"], "warmup_epochs 0.2 has no effect with the onecycle schedule"),
          (["--momentum", "0.999"], "momentum 0.999 is above 0.99"),
          (["--optimizer", "adam", "--lr", "0.1"], "lr 0.1 is far above the usual range of adam"),
          (["--optimizer", "adamw", "--lr", "1e-8"], "lr 1e-08 is far below the usual range of adamw"),
          (["--optimizer", "adadelta", "--lr", "0.001"], "lr 0.001 is far below the usual range"),
          (["--lr", "50"], "lr 50 is far above the usual range of sgd"),
          (["--lr", "0"], "lr 0: the weights never change"),
          (["--train-subset", "64", "--batch-size", "64"], "a onecycle run of 1 step"),
          (["--conv-algorithm", "fft"], "conv_algorithm fft: only the numpy engine"))
# the largest valid values, and usual settings: trained without a word
QUIET = (["--translate", "13", "--cutout", "27"], ["--scale", "6"], ["--scale", "3", "--aspect", "2.06"],
         ["--rotate", "90"], ["--momentum", "0.99", "--optimizer", "adam", "--lr", "0.003"])

CHECKS = {"plaus_quiet": _quiet,
          **{f"plaus_refused_{i}": _refused(*w) for i, (_, w) in enumerate(REFUSED)},
          **{f"plaus_file_{n}": _refused(*w) for n, (_, w) in FILES.items()},
          **{f"plaus_space_{n}": _refused(*w) for n, _, w in SPACES},
          **{f"plaus_other_{n}": _refused(*w) for n, w in OTHERS.items()},
          **{f"plaus_warned_{i}": _warns(text) for i, (_, text) in enumerate(WARNED)}}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    out, cfgs, slow = t.out, t.configs, t.slow

    def train(tag: str) -> list[str]:   # each case its own --out: a case that trains leaves a run there
        return ["train", "--out", f"{out}/plaus-{tag}", *TINY]

    for i, (flags, _) in enumerate(REFUSED):
        t.cli("plausible", "train " + " ".join(flags), [*train(f"r{i}"), *flags], timeout=slow,
              check=f"plaus_refused_{i}")
    for name, (text, _) in FILES.items():
        path = f"{cfgs}/{name}"
        t.py("plausible", f"train --config {name}", _write_then(path, text, [*train(name), "--config", path]),
             timeout=slow, check=f"plaus_file_{name}")
    path = f"{cfgs}/plaus-translate2.yaml"
    t.py("plausible", "train --config (translate 100) --translate 50",
         _write_then(path, "translate: 100\n", [*train("f2"), "--config", path, "--translate", "50"]), timeout=slow,
         check="plaus_other_flag wins")
    # a recorded run's config.json with a value out of range: --resume names that file
    bad_run = f"{out}/plaus-badrun"
    make = (f"import os\nos.makedirs({bad_run!r}, exist_ok=True)\nopen({bad_run + '/config.json'!r}, 'w')"
            f".write({json.dumps({'optim': {'lr': -1.0}})!r})\n")
    t.py("plausible", "train --resume (config.json lr -1)", make + _cli(["train", "--resume", bad_run, "--quiet"]),
         check="plaus_other_resume")
    for name, text, _ in SPACES:
        path = f"{cfgs}/{name}"
        t.py("plausible", f"tune --space {name}",
             _write_then(path, text, ["tune", "--trials", "1", "--space", path, "--out", f"{out}/plaus-study",
                                      *TINY[:-1]]), timeout=slow, check=f"plaus_space_{name}")
    t.py("plausible", "convscope.train({'translate': 1000})",
         "import convscope\nconvscope.train({'translate': 1000, 'train_subset': 64, 'epochs': 1}, "
         "out=WS/'_o'/'plaus-api', progress=False)\n", timeout=slow, check="plaus_other_api")
    for i, (flags, _) in enumerate(WARNED):
        t.cli("plausible", "train " + " ".join(flags) + " (warns)", [*train(f"w{i}"), *flags], expect="ok",
              timeout=slow, check=f"plaus_warned_{i}")
    for i, flags in enumerate(QUIET):
        # two epochs: the tiny run's 2 steps of onecycle would (rightly) warn that the first has rate 0
        t.cli("plausible", "train " + " ".join(flags) + " (sanity)", [*train(f"ok{i}"), "--epochs", "2", *flags],
              expect="ok", timeout=slow, check="plaus_quiet")


def _write_then(path: str, text: str, argv: list[str]) -> str:
    return f"open({path!r}, 'w').write({text!r})\n" + _cli(argv)
