"""Image files given to `predict`: bombs, FIFOs, /dev/zero, text, empty, folders, GIFs, truncated files; --top."""

from __future__ import annotations


from ._table import Table


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _predict(t)


def _predict(t: Table) -> None:
    """`predict RUN IMAGE` on hostile image files, and --top."""
    cli, run, im = t.cli, t.run, t.images
    for name in ("ok.png", "big.jpg"):
        cli("predict", f"predict {name}", ["predict", run, im / name], expect="ok")
    for name in ("bomb.png", "mid.png", "fifo.png", "devzero.png", "text.png", "empty.png", "dir.png", "gif.png",
                 "trunc.png", "missing.png"):
        cli("predict", f"predict {name}", ["predict", run, im / name])
    for top in ("0", "-1", "abc"):
        cli("predict", f"predict --top {top}", ["predict", run, im / "ok.png", "--top", top])
    cli("predict", "predict --top 1000", ["predict", run, im / "ok.png", "--top", "1000"], expect="ok")
