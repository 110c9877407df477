"""Dataset inputs: `data list/show` on hostile --data-dir contents and class folders, and the readers' Python API."""

from __future__ import annotations


from ._table import PRE_CORE, Table


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _data(t)
    _api(t)


def _data(t: Table) -> None:
    """`data list` / `data show` on bombs, FIFOs, /dev/zero, truncated and junk files, hostile folders."""
    cli, out, F, D = t.cli, t.out, t.folders, t.data
    cli("data", "data list", ["data", "list"], expect="ok")
    for sub in ("bomb", "devzero", "fifo", "trunc", "junk"):
        cli("data", f"data list --data-dir {sub}", ["data", "list", "--data-dir", D / sub], expect="ok")
        for ds in ("mnist", "fashion-mnist"):
            cli("data", f"data show {ds} --data-dir {sub}",
                ["data", "show", ds, "--data-dir", D / sub, "--no-download", "--out", f"{out}/s.png"])
    cli("data", "data show cifar10 gzip bomb", ["data", "show", "cifar10", "--data-dir", D / "cifarbomb",
                                                "--no-download", "--out", f"{out}/s.png"])
    cli("data", "data show cifar10 FIFO batches", ["data", "show", "cifar10", "--split", "test", "--data-dir",
                                                   D / "cifarfifo", "--no-download", "--out", f"{out}/s.png"])
    for name in ("one", "mixed", "fifo", "bomb", "devzero", "outside", "junk", "nested", "empty", "noimages",
                 "fifo_root"):
        cli("data", f"data show folder:{name}", ["data", "show", f"folder:{F / name}", "--split", "all", "--out",
                                                 f"{out}/s.png"], expect="ok" if name == "one" else "error")
        cli("data", f"data show folder:{name} train", ["data", "show", f"folder:{F / name}", "--out", f"{out}/s.png"])
    cli("data", "data show folder:ok", ["data", "show", f"folder:{F / 'ok'}", "--split", "all", "--out",
                                        f"{out}/s.png"], expect="ok")
    cli("data", "data show folder:mixed?resize=fit", ["data", "show", f"folder:{F / 'mixed'}?resize=fit",
                                                      "--split", "all", "--out", f"{out}/s.png"], expect="ok")
    cli("data", "data show folder:mixed --resize fit", ["data", "show", f"folder:{F / 'mixed'}", "--resize", "fit",
                                                        "--split", "all", "--out", f"{out}/s.png"], expect="ok")
    for size in ("0x0", "-1x5", "abc", "28", "1x1x1", "99999x99999"):
        cli("data", f"data show --size {size}", ["data", "show", f"folder:{F / 'mixed'}", "--resize", "fit",
                                                 "--size", size, "--split", "all", "--out", f"{out}/s.png"])
    for per in ("0", "-1", "abc"):
        cli("data", f"data show --per-class {per}", ["data", "show", "digits", "--per-class", per, "--out",
                                                     f"{out}/s.png"])
    for split in ("valid", "", "TRAIN"):
        cli("data", f"data show digits --split '{split}'", ["data", "show", "digits", "--split", split, "--out",
                                                            f"{out}/s.png"])
    cli("data", "data show unknown", ["data", "show", "imagenet", "--out", f"{out}/s.png"])
    cli("data", "data show out=/proc", ["data", "show", "digits", "--out", "/proc/forbidden.png"])


def _api(t: Table) -> None:
    """The Python API: 'api' cases."""
    py = t.py
    pre = PRE_CORE
    api = {
        "load(None)": "result = load(None)",
        "load('digits', 5)": "result = load('digits', 5)",
        "load(folder FIFO root)": "result = load('folder:' + str(WS/'folders'/'fifo_root'), 'all')",
        "load(folder one, train)": "result = load('folder:' + str(WS/'folders'/'one'), 'train')",
        "read_idx(FIFO)": "from convscope.data import read_idx; result = "
                          "read_idx(WS/'data'/'fifo'/'t10k-labels-idx1-ubyte.gz')",
        "read_idx(/dev/zero)": "from convscope.data import read_idx; result = read_idx('/dev/zero')",
        "read_idx(bomb)": "from convscope.data import read_idx; result = "
                          "read_idx(WS/'data'/'bomb'/'t10k-labels-idx1-ubyte.gz')",
        "ImageDataset(float images)": "result = ImageDataset(torch.rand(2,1,4,4), torch.zeros(2, dtype=torch.int64), "
                                      "('a',), 'x', 'test', 'mem')",
        "Normalization.apply(float images)": "x = ds.images.float() / 255; result = bool(torch.isfinite("
                                             "run.normalization.apply(x)).all()) and 'accepted floats'",
    }
    for name, code in api.items():
        py("api", name, pre + code)
