"""``convscope export RUN --onnx PATH``: the run as an ONNX file, checked against torch on its test split."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, ConvscopeError
    from ..training import load_run
    from ..training.export import export_onnx
    from .data_cmd import load_from_args

    if args.no_check and (args.dataset or args.split):
        raise ConfigError(f"{'--dataset' if args.dataset else '--split'} chooses the data the export is checked on, "
                          "and --no-check runs no check; give one or the other")
    split = args.split or "test"
    run = load_run(args.run)
    check: object = False
    if not args.no_check:
        name = args.dataset or run.config.data.dataset
        try:
            check = load_from_args(args, name, split, run.input_shape)
        except ConvscopeError as e:
            if args.dataset:
                raise
            # the run's own dataset, as recorded: a folder given relative to where it was trained, a file since
            # moved. Say why export reads it at all, and the two ways on
            raise ConfigError(f"{e} (the run's dataset, read to check the export against torch: give --dataset "
                              "NAME or folder:PATH as it is found from here, or --no-check)") from None
    out = export_onnx(run, args.path, input=args.input, opset=args.opset, check=check, split=split)
    print(f"wrote {out.path} ({out.bytes / 1e6:.2f} MB, ONNX opset {out.opset})")
    print(f"input  {out.input_name}: {out.metadata['convscope.input']}")
    print(f"output logits: {out.metadata['convscope.output']}")
    if out.check is None:
        print("not checked (--no-check)")
    else:
        c = out.check
        print(f"check  onnxruntime vs torch on {c.dataset} {c.split}, {c.n:,} images: predictions identical "
              f"({c.same_prediction:,}/{c.n:,}), max |logit difference| {c.max_abs_diff:.2e}")
    return 0


# convscope.training.export.OPSETS, which imports torch; --help must not (tests/test_imports.py). A test keeps
# the two equal.
OPSETS = (18, 23)


def register(sub: argparse._SubParsersAction) -> None:
    from ._options import add_threads
    from .data_cmd import add_data_args
    from ._types import count

    p = sub.add_parser("export", help="write a run as an ONNX model, checked against torch with onnxruntime",
                       description="Export a run's model to ONNX (dynamic batch axis; normalization, classes and "
                                   "provenance in the model's metadata) and check it against torch on the run's "
                                   "test split: nothing is written unless every prediction agrees.")
    p.add_argument("run", type=Path, help="run directory")
    # dest "path", export_onnx's argument: its errors ("path: ...") then name --onnx
    p.add_argument("--onnx", dest="path", type=str, required=True, metavar="PATH",
                   help="the ONNX file to write, e.g. model.onnx")
    p.add_argument("--input", choices=("pixels", "normalized"), default="pixels",
                   help="pixels: the graph takes uint8 images 0..255 and normalizes inside (default); normalized: "
                        "it takes (pixels/255 - mean)/std, with mean and std in the metadata")
    p.add_argument("--opset", type=count(*OPSETS, why="the opsets torch's exporter and onnxruntime both handle"),
                   default=None, help=f"ONNX opset, {OPSETS[0]}..{OPSETS[1]} (default: the exporter's)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    p.add_argument("--dataset", help="dataset to check on (default: the run's)")
    p.add_argument("--split", default=None, help="split to check on (default test)")
    add_data_args(p)
    add_threads(p)   # the check runs the model over the whole test split
    p.set_defaults(func=cmd_export, output_set=True)   # a failed export leaves no folder it made for the file
