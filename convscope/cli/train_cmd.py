"""``convscope train``, ``convscope eval``, ``convscope predict`` and ``convscope models``."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..training import config as C
from ._options import add_threads
from ._types import count, threads, whole


def _parse_scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _lr_or_find(text: str) -> float | str:
    if text == "find":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'find', got {text!r}") from None


def add_config_flags(p: argparse.ArgumentParser, lr_find: bool = False) -> None:
    """One flag per TrainConfig field, named by its flat key (``--lr`` for optim.lr), in one group per section:
    help and choices from the field's metadata, the type from its hint, no default (the config supplies it).
    ``lr_find``: ``--lr`` also takes ``find`` (run the learning-rate finder first; ``convscope train``)."""
    groups = {None: p.add_argument_group("training options (override --recipe and --config)")}
    for sec, cls in C.SECTIONS.items():
        groups[sec] = p.add_argument_group(f"{sec} options: {cls.__doc__.splitlines()[0].rstrip('.').lower()}")
    for name, f in C.FIELDS.items():
        g = groups[C.FLAT[name][0]]
        flag = "--" + name.replace("_", "-")
        hint = f.metadata.get("help", "")
        scalar = next(t for t in (typing.get_args(C.HINTS[name]) or (C.HINTS[name],)) if t is not type(None))
        # ASCII digits only; --threads bounded at parse time, in the words of every other command's --threads
        scalar = threads() if name == "threads" else whole if scalar is int else scalar
        if "choices" in f.metadata:
            g.add_argument(flag, dest=name, choices=f.metadata["choices"], default=None, help=hint)
        elif scalar is bool:
            g.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=hint)
        elif scalar is dict:
            g.add_argument("--model-arg", dest=name, action="append", default=None, metavar="KEY=VALUE",
                           help="model-specific argument, e.g. --model-arg width=48 (repeatable)")
        elif "const" in f.metadata:   # the flag alone means its const (--diagnose: every 10 steps)
            g.add_argument(flag, dest=name, type=scalar, nargs="?", const=f.metadata["const"], default=None,
                           metavar="N", help=hint)
        elif name == "lr" and lr_find:
            g.add_argument(flag, dest=name, type=_lr_or_find, default=None, metavar="LR",
                           help=hint + "; or find: sweep it first (convscope lr-find) and train at the suggestion")
        else:
            g.add_argument(flag, dest=name, type=scalar, default=None, metavar=name.upper().split("_")[0], help=hint)


def config_from_args(args: argparse.Namespace) -> C.TrainConfig:
    base = C.recipe(args.recipe)
    from_file: set[str] = set()
    if args.config:
        values = C.read_config_file(args.config)
        base = C.config_from_dict(values, base, source=str(args.config))
        from_file = C.given_keys(values, str(args.config))
    overrides: dict[str, Any] = {}
    for name in C.FIELDS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "model_args":
            parsed = {}
            for item in value:
                if "=" not in item:
                    raise ConfigError(f"--model-arg {item!r}: expected KEY=VALUE, e.g. width=48")
                k, v = item.split("=", 1)
                parsed[k] = _parse_scalar(v)
            value = {**base.model.args, **parsed}
        overrides[name] = value
    # an error found later (against the data) about a key the file gave names the file, not a flag not given
    args._sources = {key: str(args.config) for key in from_file - set(overrides)}
    return C.config_from_dict(overrides, base, source=None)   # errors keep .arg: the CLI names the flag


def refuse_flags_on_resume(args: argparse.Namespace) -> None:
    """``--resume`` continues a run with the config it recorded (a finished run is only loaded): a training flag
    given with it would be silently ignored, so it is refused, by name. Extending a finished run (more epochs)
    would change its learning-rate schedule from the first step: that is a new run."""
    # --threads is how the run uses this machine, not what it trains: it may change on resume
    given = ["--" + name.replace("_", "-") for name in C.FIELDS
             if name != "threads" and getattr(args, name, None) is not None]
    given = [("--model-arg" if g == "--model-args" else g) for g in given]
    given += [flag for flag, dest, default in (("--recipe", "recipe", "fast"), ("--config", "config", None),
                                               ("--out", "out", None)) if getattr(args, dest) != default]
    if given:
        raise ConfigError(f"--resume {args.resume}: continues the run with the config it recorded, so "
                          f"{', '.join(given)} would be ignored; drop {'it' if len(given) == 1 else 'them'}, or "
                          "start a new run with those options (--out NEW_DIR)")


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def cmd_train(args: argparse.Namespace) -> int:
    from ..distributed import is_main_process
    from ..training import TrainingInterrupted, resume, train
    from .launch import relaunch

    if not args.check and (args.json or args.check_batch != C.CHECK_BATCH or args.check_steps != C.CHECK_STEPS):
        given = "--json" if args.json else "--check-batch" if args.check_batch != C.CHECK_BATCH else "--check-steps"
        raise ConfigError(f"{given}: goes with --check (the one-batch sanity check); add --check, or drop {given} "
                          "to train", arg=given)
    if args.resume and (args.check or args.lr == "find"):
        raise ConfigError(f"--resume {args.resume}: continues the run as recorded; --check and --lr find are for a "
                          "new run")
    if getattr(args, "nproc", 1) > 1 and (args.check or args.lr == "find"):
        raise ConfigError("--check and --lr find run in this process; drop --nproc (for --lr find, run "
                          "`convscope lr-find` first and give its suggestion as --lr)")
    if getattr(args, "nproc", 1) > 1 and not args.resume:   # refuse what every worker would, before they start
        from ..training.distributed import check_processes

        check_processes(config_from_args(args).runtime.engine, args.nproc)
    if (status := relaunch(args)) is not None:   # --nproc N: this command line on N processes (torchrun)
        return status
    quiet = args.quiet
    callbacks = args.callbacks  # Callback objects, for programs that run this command with their own
    if args.resume:
        refuse_flags_on_resume(args)
    elif args.lr == "find" or args.check:
        cfg, callbacks = _find_lr(args, callbacks)
        if cfg is None:
            return 1
        if args.check:
            return _check(args, cfg)
    try:
        if args.resume:
            run = resume(args.resume, progress=not quiet, callbacks=callbacks, threads=args.threads)
        else:
            cfg = config_from_args(args)
            run = train(cfg, out=args.out, runs_dir=args.runs_dir, progress=not quiet, callbacks=callbacks)
    except TrainingInterrupted as e:
        print(f"convscope: {e}", file=sys.stderr)
        return 128 + e.signum   # the shell's code for the signal: 130 after Ctrl-C, 143 after SIGTERM
    if not is_main_process():   # several processes: rank 0 reports
        return 0
    s = run.summary
    params = sum(p.numel() for p in run.model.parameters())
    rows = [("run", str(run.path)), ("model", f"{run.config.model.name} ({params:,} parameters)"),
            ("dataset", f"{run.config.data.dataset} ({s.get('train_images', '?')} train / "
                        f"{s.get('test_images', '?')} test)"),
            ("epochs", f"{s.get('epochs')} ({s.get('steps')} steps)"),
            ("test accuracy", f"{100 * s['test_accuracy']:.2f}%" + (
                f" (meaningless: scores NaN or infinite on {s['non_finite_test_scores']:,} test images; the run "
                "diverged)" if s.get("non_finite_test_scores") else "")),
            ("training time", f"{s.get('seconds', 0):.1f} s on {s.get('device')} ({s.get('threads')} "
                              f"thread{'' if s.get('threads') == 1 else 's'}, "
                              f"{'bf16' if s.get('bf16') else 'fp32'})")]
    if s.get("best_val_accuracy") is not None:
        rows.append(("best val accuracy", f"{100 * s['best_val_accuracy']:.2f}% (epoch {s['best_val_epoch']})"))
    if s.get("skipped_steps"):
        rows.append(("skipped steps", f"{s['skipped_steps']} (non-finite loss or gradients)"))
    print("summary\n" + _table(rows))
    return 0


def _find_lr(args: argparse.Namespace, callbacks: Any) -> tuple[Any, Any]:
    """``--lr find``: sweep, print the suggestion, and train at it (the sweep saved in the run folder); (the config,
    the callbacks), or (None, ...) when no rate was found. Without it: the config as given."""
    if args.lr != "find":
        return config_from_args(args), callbacks
    from ..training.lr_find import SaveSweep, lr_find, report

    args.lr = None
    cfg = config_from_args(args)
    res = lr_find(cfg)
    print(report(res))
    if res.suggested is None:
        print("convscope: error: --lr find: no learning rate found; fix the model, or give --lr", file=sys.stderr)
        return None, callbacks
    args.lr = res.suggested
    return config_from_args(args), [*callbacks, SaveSweep(res)]


def _check(args: argparse.Namespace, cfg: C.TrainConfig) -> int:
    """``--check``: the sanity checks instead of the run; 0 passed, 1 failed."""
    from ..training.sanity import check, report

    res = check(cfg, batch=args.check_batch, max_steps=args.check_steps)
    print(res.to_json() if args.json else report(res))
    return 0 if res.passed else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from ..training import load_run
    from ..training.evaluate import evaluate
    from ..training.report import confusion_png, confusion_table
    from .data_cmd import load_from_args

    run = load_run(args.run)
    name = args.dataset or run.config.data.dataset
    ds = load_from_args(args, name, args.split, run.input_shape)
    res = evaluate(run.model, ds, run.normalization, tta=run.tta, classes=run.classes)
    res.refuse_non_finite(str(run.path))
    print(f"{run.path}: {name} {args.split}, {res.n:,} images\naccuracy {100 * res.accuracy:.2f}%  "
          f"(loss {res.loss:.4f})\n")
    print(confusion_table(res, ds.classes))
    out = run.path / "eval"
    png = confusion_png(res, ds.classes, out / f"confusion-{name.replace(':', '_').replace('/', '_')}-{args.split}.png")
    print(f"\nwrote {png}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..training import load_run
    from ..training.report import predict_files

    run = load_run(args.run)
    for path, notes, top in predict_files(run, args.images, k=args.top, prepare=args.prepare, show=args.show):
        print(f"{path}: " + ", ".join(f"{cls} {100 * p:.1f}%" for cls, p in top))
        for note in notes:
            print(f"  note: {note}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    # read by path, not through convscope.models (whose import builds the registry with torch); the table is
    # derived data that tests/test_models.py keeps equal to convscope.models.zoo_table.compute()
    table = Path(__file__).resolve().parent.parent / "models" / "zoo_table.json"
    rows = [(r["name"], f"{r['parameters']:,}", "x".join(map(str, r["input"])), f"{r['mflops']:.2f}",
             r["description"]) for r in json.loads(table.read_text(encoding="utf-8"))]
    head = ("name", "parameters", "input", "MFLOPs/img", "description")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    for r in [head] + rows:
        print("  ".join(f"{r[i]:<{widths[i]}}" if i != 1 else f"{r[i]:>{widths[i]}}" for i in range(4)) + "  " + r[4])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from .data_cmd import add_data_args
    from .launch import add_nproc_arg

    p = sub.add_parser("train", help="train a model (no arguments: the fast model on the embedded digits)",
                       description="Train a CNN. With no arguments: the `fast` recipe on the embedded digits, offline.")
    p.add_argument("--recipe", default="fast", choices=list(C.RECIPES), help="starting point (default: fast)")
    p.add_argument("--config", type=Path, help="YAML, TOML or JSON file of training options")
    p.add_argument("--out", type=Path, help="run directory (default: runs/<model>-<dataset>[-N])")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where new run directories go (default runs/)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue a killed or interrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--check", action="store_true",
                   help="instead of training: check the initial loss against -log(1/C) and that the model can "
                        "overfit one batch (exit status 1 and the reasons when it cannot learn)")
    p.add_argument("--check-batch", type=count(1, C.CHECK_MAX_BATCH, C.CHECK_WHY), default=C.CHECK_BATCH, metavar="N",
                   help=f"--check: images to overfit (default {C.CHECK_BATCH}, at most {C.CHECK_MAX_BATCH})")
    p.add_argument("--check-steps", type=count(1, C.CHECK_MAX_STEPS, C.CHECK_WHY), default=C.CHECK_STEPS,
                   metavar="N", help=f"--check: the bound on the steps (default {C.CHECK_STEPS}, at most "
                                     f"{C.CHECK_MAX_STEPS:,})")
    p.add_argument("--json", action="store_true", help="--check: the result as JSON")
    add_nproc_arg(p)
    add_config_flags(p, lr_find=True)
    p.set_defaults(func=cmd_train, callbacks=())

    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a run")
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the run's)")
    p.add_argument("--split", default="test", help="split (default test)")
    add_data_args(p)
    add_threads(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top classes for image files (PNG/JPEG of any size)")
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--top", type=count(1), default=3, help="how many classes to show (default 3)")
    p.add_argument("--prepare", choices=("none", "mnist"), default=None,
                   help="mnist: invert a light background, crop to the ink, fit a 20 px box, centre by mass, as "
                        "MNIST was made; none: only resize (default: the run's, mnist for digit datasets)")
    p.add_argument("--show", action="store_true", help="write the prepared input beside each image "
                                                       "(<name>.prepared.png): what the model saw")
    add_threads(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="the model registry: parameters, input shape, FLOPs per image")
    p.set_defaults(func=cmd_models, torch_free=True)
