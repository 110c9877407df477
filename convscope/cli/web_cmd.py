"""``convscope serve [RUN | RUNS_DIR]`` and ``convscope report RUN``."""

from __future__ import annotations

import argparse
from pathlib import Path
from ._options import add_quiet, add_threads
from ._types import count, threads


def cmd_serve(args: argparse.Namespace) -> int:
    from ..web import serve

    serve(args.paths or [Path("runs")], host=args.host, port=args.port, allow_remote=args.allow_remote,
          extra_hosts=args.allow_host, threads=args.threads)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..web import build_report

    out = build_report(args.run, args.out, layer=args.layer, edge_filter=args.filter, image=args.image,
                       test_index=args.test_index)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, self-contained: open it offline)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="browse runs in the browser: draw a digit and watch every layer",
                       description="Serve runs on a local web server: the Draw page (live prediction and every "
                                   "layer's feature maps), units, the conv-as-matrix explorer and training curves. "
                                   "Binds 127.0.0.1 unless told otherwise; Ctrl-C stops it.")
    p.add_argument("paths", nargs="*", type=Path, metavar="RUN | RUNS_DIR",
                   help="run directories or folders of runs (default: runs/)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--allow-remote", action="store_true",
                   help="required to bind a non-loopback --host: anyone reaching it can use the server")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another Host header name to accept (e.g. the machine's DNS name), repeatable")
    p.add_argument("--threads", type=threads(), default=1, metavar="N",
                   help="torch threads for the models (default 1: each run answers one forward at a time, and a "
                        "forward takes under a millisecond: too little work to split)")
    p.set_defaults(func=cmd_serve)

    r = sub.add_parser("report", help="one self-contained HTML report of a run (opens offline)",
                       description="Write one HTML file with images inline: summary, curves, confusion matrix, "
                                   "layer table, sparsity, the edge experiment, the first layer's conv matrix and "
                                   "a page per unit of one layer.")
    r.add_argument("run", type=Path, help="run directory")
    r.add_argument("-o", "--out", type=Path, default=None, help="HTML file to write (default RUN/report.html)")
    r.add_argument("--layer", default=None, help="layer whose units get a page each (default: the first conv)")
    r.add_argument("--filter", default="sobel-x", help="edge experiment filter (default sobel-x)")
    pick = r.add_mutually_exclusive_group()
    pick.add_argument("--image", type=Path, default=None, metavar="PATH",
                      help="the network picture's input: a PNG/JPEG file, prepared as `predict` prepares it")
    pick.add_argument("--test-index", type=count(0), default=None, metavar="N",
                      help="the network picture's input: test image N (default 0)")
    add_quiet(r)
    add_threads(r)
    r.set_defaults(func=cmd_report, output_set=True)
