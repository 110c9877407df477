"""``convscope experiment refine RUN --layer NAME``: refine kernels on their top images, measure overfitting."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .._atomic import writable_folder
from ..errors import ConfigError
from ._types import count, number


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} {text!r}: expected comma-separated integers, e.g. 0,1,2,3,4") from None
    if any(not 0 <= v < 2**63 for v in values):      # torch.manual_seed's range
        raise ConfigError(f"{name} {text!r}: each seed must be from 0 to 2**63 - 1")
    return values


def _threads(text: str) -> int:
    """--threads: at least 1 and at most the CPU count (a huge count can crash torch)."""
    value = count(1)(text)
    cpus = os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"must be at most {cpus} (this machine's CPU count), got {value}")
    return value


def _words(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def cmd_refine(args: argparse.Namespace) -> int:
    from ..experiments import RefineConfig, refine
    from ..experiments.pictures import save_refine

    cfg = RefineConfig(layer=args.layer, response=args.response, k=args.k, steps=args.steps,
                       eval_every=args.eval_every, seeds=_ints(args.seeds, "--seeds"), variants=_words(args.variants),
                       batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, angle=args.angle,
                       params=args.params, bn=_words(args.bn), bn_images=args.bn_images, train_limit=args.train_limit,
                       test_limit=args.test_limit, after_topk=args.after_topk, threads=args.threads)
    if args.run is not None and args.model_file:
        raise ConfigError("give a RUN or --model-file, not both")
    if args.out is not None:
        writable_folder(args.out, f"--out {args.out}")
    elif args.run is not None and Path(args.run).is_dir():
        writable_folder(Path(args.run) / "experiments", f"RUN {args.run}")      # the default output lies under the run
    kwargs = {}
    if args.model_file:
        from ..data import load
        from ..inspect.target import from_model_file
        from .inspect_cmd import _floats

        if args.out is None:
            raise ConfigError("--model-file: give --out FOLDER for the results")
        mean, std = _floats(args.mean, "--mean"), _floats(args.std, "--std", positive=True)  # before loading data
        name = args.dataset or "digits"
        train, test = load(name, "train", args.data_dir), load(name, "test", args.data_dir)
        t = from_model_file(args.model_file, args.weights, train.shape, name, args.out, mean, std)
        target, kwargs = t.model, {"train": train, "test": test, "normalization": t.normalization}
    elif args.run is not None:
        target = args.run
    else:
        raise ConfigError("give a run directory, or --model-file path.py:ClassName --weights file.safetensors")
    res = refine(target, cfg, progress=print, **kwargs)
    print(res.table())
    out = args.out or Path(args.run) / "experiments" / f"refine-{res.layer.replace('/', '_')}"
    paths = save_refine(res, out)
    print(f"{res.seconds:.0f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="experiments that combine training and inspection (refine)")
    esub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    r = esub.add_parser("refine", help="refine a layer's kernels on their top images; does it cost generalisation?",
                        description="From the same trained weights, over several seeds: gradient ascent of each "
                        "kernel's response on its top-k training images (norms fixed), fine-tuning on those images, "
                        "on as many random or representative images, and on the full data. Writes "
                        "RUN/experiments/refine-LAYER/{results.json,curves.png,per-class.png,kernels.png}.")
    r.add_argument("run", nargs="?", type=Path, help="a run directory (or use --model-file)")
    r.add_argument("--model-file", help="your model: path.py:ClassName (instantiated with no arguments)")
    r.add_argument("--weights", type=Path, help="safetensors weights for --model-file")
    r.add_argument("--mean", help="--model-file normalization: per-channel mean on the 0..1 scale")
    r.add_argument("--std", help="--model-file normalization: per-channel std")
    r.add_argument("--dataset", help="--model-file: its dataset (default digits); runs use their own")
    r.add_argument("--data-dir", type=Path, default=None, help="folder searched first for dataset files")
    r.add_argument("--layer", default="conv3", help="the conv layer whose kernels are refined (default conv3)")
    r.add_argument("--response", help="layer whose channel peaks are the kernels' response (default: --layer)")
    r.add_argument("--k", type=count(1), default=9, help="top images per kernel (default 9)")
    r.add_argument("--steps", type=count(1), default=30, help="optimisation steps per variant (default 30)")
    r.add_argument("--eval-every", type=count(1), default=30, help="measure every N steps (default 30: start and end)")
    r.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0,1,2,3,4)")
    r.add_argument("--variants", default="maximize,top,random,representative,full",
                   help="comma-separated subset of maximize,top,random,representative,full")
    r.add_argument("--batch-size", type=count(1), default=64, help="images per step (default 64)")
    r.add_argument("--lr", type=number(positive=True), default=0.01,
                   help="fine-tune variants: SGD learning rate (default 0.01)")
    r.add_argument("--momentum", type=number(0.0), default=0.9, help="fine-tune variants: SGD momentum (default 0.9)")
    r.add_argument("--angle", type=number(positive=True), default=0.01,
                   help="maximize: radians each kernel turns per step (0.01)")
    r.add_argument("--params", choices=["layer", "all"], default="layer",
                   help="what the fine-tune variants train: the layer's parameters (default) or all")
    r.add_argument("--bn", default="frozen,reestimate", help="BN statistics when measuring: frozen,reestimate")
    r.add_argument("--bn-images", type=count(1), default=2000, help="training images to re-estimate BN on (2000)")
    r.add_argument("--train-limit", type=count(0), default=0, help="use N training images, class-stratified (0 = all)")
    r.add_argument("--test-limit", type=count(0), default=0, help="use N test images, class-stratified (0 = all)")
    r.add_argument("--after-topk", action="store_true", help="recompute the top-k after refinement (seed 0)")
    r.add_argument("--threads", type=_threads, default=None, help="torch threads (default: torch's)")
    r.add_argument("--out", type=Path, help="output folder (default RUN/experiments/refine-LAYER)")
    r.set_defaults(func=cmd_refine)
