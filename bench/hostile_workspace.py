"""The hostile sweep's workspace: hostile files, folders, configs, user models and broken run directories."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

PY = sys.executable
MB = 1 << 20
TINY = ["--epochs", "1", "--train-subset", "64", "--model-arg", "width=4", "--threads", "1", "--quiet",
        "--batch-size", "32", "--no-tta"]


# ---- the workspace -----------------------------------------------------------------------------------------------

def _png_header(width: int, height: int) -> bytes:
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _zeros_gzip(n: int, head: bytes = b"") -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(head)] + [z.compress(b"\0" * MB) for _ in range(n // MB)]
    return b"".join(parts) + z.flush()


def _class(root: Path, name: str, n: int = 6, size=(28, 28), mode: str = "L") -> None:
    from PIL import Image

    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name) + n)
    for i in range(n):
        shape = size if mode == "L" else (*size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(d / f"{i}.png")


MODELS_PY = '''
import torch
from torch import nn

class Good(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 14 * 14, 10)
    def forward(self, x):
        return self.fc(self.flatten(self.pool1(self.relu1(self.conv1(x)))))

class NoParams(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu1 = nn.ReLU()
        self.pool1 = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
    def forward(self, x):
        return self.flatten(self.pool1(self.relu1(x))).repeat(1, 10)

class Broken(nn.Module):
    def __init__(self):
        raise ValueError("broken on purpose")

class Tupled(Good):
    def forward(self, x):
        return (super().forward(x), x)

NotModule = 5
'''


def make_workspace(root: Path) -> Path:
    """Build every hostile input once (a tiny trained run is the one slow part: ~20 s)."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    ws = root
    (ws / "_o").mkdir()
    env = {**os.environ, "CONVSCOPE_DATA": str(ws / "_cache")}
    r = subprocess.run([PY, "-m", "convscope", "train", "--out", str(ws / "run"), *TINY], capture_output=True,
                       text=True, env=env, timeout=600, check=False)
    if r.returncode:
        raise SystemExit(f"could not train the sweep's tiny run:\n{r.stderr}")
    # run directories, each broken one way
    def variant(name: str, edit) -> None:
        d = ws / "runs_bad" / name
        shutil.copytree(ws / "run", d)
        edit(d)

    def meta_set(key, value):
        def edit(d):
            m = json.loads((d / "model.json").read_text())
            m[key] = value
            (d / "model.json").write_text(json.dumps(m))
        return edit

    variant("meta_shape_str", meta_set("input_shape", "1x28x28"))
    variant("meta_classes_short", meta_set("classes", ["a"]))
    variant("meta_model_args", meta_set("model_args", {"width": "wide"}))
    variant("meta_num_classes", meta_set("num_classes", 10**9))
    variant("meta_norm_nan", meta_set("normalization", {"mean": [float("nan")], "std": [0.0]}))
    variant("meta_list", lambda d: (d / "model.json").write_text("[]"))
    variant("meta_deep", lambda d: (d / "model.json").write_text("[" * 200_000 + "]" * 200_000))
    variant("meta_missing", lambda d: (d / "model.json").unlink())
    variant("config_missing", lambda d: (d / "config.json").unlink())
    variant("summary_list", lambda d: (d / "summary.json").write_text("[1, 2]"))

    def fifo(name):
        def edit(d):
            (d / name).unlink()
            os.mkfifo(d / name)
        return edit

    variant("weights_fifo", fifo("model.safetensors"))
    variant("config_fifo", fifo("config.json"))
    variant("meta_fifo", fifo("model.json"))
    variant("weights_devzero", lambda d: ((d / "model.safetensors").unlink(),
                                          (d / "model.safetensors").symlink_to("/dev/zero")))
    variant("weights_pickle", lambda d: torch.save({"x": torch.ones(1)}, d / "model.safetensors"))
    variant("weights_truncated", lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:200]))
    variant("checkpoint_garbage", lambda d: (d / "checkpoint.safetensors").write_bytes(os.urandom(4096)))
    # user models and weights
    (ws / "models.py").write_text(MODELS_PY)
    sys.path.insert(0, str(ws))
    import importlib

    models = importlib.import_module("models")
    save_file(models.Good().state_dict(), str(ws / "good.safetensors"))
    save_file({"nope": torch.ones(3)}, str(ws / "wrongkeys.safetensors"))
    torch.save(models.Good().state_dict(), ws / "w.pt")
    (ws / "garbage.safetensors").write_bytes(os.urandom(1000))
    os.mkfifo(ws / "fifo.safetensors")
    # folders
    f = ws / "folders"
    _class(f / "ok", "a")
    _class(f / "ok", "b")
    _class(f / "one", "only", n=10)
    _class(f / "mixed", "a")
    _class(f / "mixed", "b", size=(20, 36))
    _class(f / "rgb", "a", mode="RGB")
    _class(f / "rgb", "b", mode="RGB")
    for name, extra in (("fifo", "fifo"), ("bomb", "bomb"), ("devzero", "devzero"), ("outside", "outside"),
                        ("junk", "junk"), ("nested", "nested")):
        _class(f / name, "a")
        _class(f / name, "b")
        p = f / name / "b" / "x.png"
        if extra == "fifo":
            os.mkfifo(p)
        elif extra == "bomb":
            p.write_bytes(_png_header(30_000, 30_000))
        elif extra == "devzero":
            p.symlink_to("/dev/zero")
        elif extra == "outside":
            p.symlink_to(ws / "folders" / "ok" / "a" / "0.png")
            shutil.move(str(f / name), str(ws / "_o" / "outside_ds"))
            (f / name).symlink_to(ws / "_o" / "outside_ds")
            (ws / "_o" / "outside_ds" / "b" / "x.png").unlink()
            (ws / "_o" / "outside_ds" / "b" / "x.png").symlink_to("/etc/hostname")
        elif extra == "junk":
            p.write_bytes(os.urandom(300))
        else:
            (f / name / "b" / "sub").mkdir()
    (f / "empty").mkdir()
    (f / "noimages" / "a").mkdir(parents=True)
    (f / "noimages" / "b").mkdir()
    os.mkfifo(f / "fifo_root")
    # data folders
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    d = ws / "data"
    for sub in ("bomb", "devzero", "fifo", "trunc", "junk"):
        (d / sub).mkdir(parents=True)
    for n in names:
        (d / "bomb" / n).write_bytes(_zeros_gzip(256 * MB, bytes([0, 0, 8, 3])))
        (d / "devzero" / n).symlink_to("/dev/zero")
        os.mkfifo(d / "fifo" / n)
        (d / "junk" / n).write_bytes(os.urandom(5000))
        src = Path("/usr/share/datasets/fashion-mnist") / n
        if src.exists():
            b = src.read_bytes()
            (d / "trunc" / n).write_bytes(b[: len(b) // 2])
        else:
            (d / "trunc" / n).write_bytes(gzip.compress(b"\0\0\x08\x03")[:-4])
    (d / "cifarbomb" / "cifar10").mkdir(parents=True)
    (d / "cifarbomb" / "cifar10" / "cifar-10-binary.tar.gz").write_bytes(_zeros_gzip(512 * MB))
    (d / "cifarfifo" / "cifar-10-batches-bin").mkdir(parents=True)
    for n in ["test_batch.bin"] + [f"data_batch_{i}.bin" for i in range(1, 6)]:
        os.mkfifo(d / "cifarfifo" / "cifar-10-batches-bin" / n)
    # images for predict
    im = ws / "images"
    im.mkdir()
    # a real digit (predict refuses a blank page: "no ink found"), and a photo-sized dark-on-light copy of it
    from convscope.data import load

    digit = load("digits", "test").images[0, 0].numpy()                               # (28, 28) uint8
    Image.fromarray(digit).save(im / "ok.png")
    big = np.asarray(Image.fromarray(255 - digit).resize((300, 200)).convert("RGB"))
    Image.fromarray(big).save(im / "big.jpg")
    (im / "bomb.png").write_bytes(_png_header(30_000, 30_000))
    (im / "mid.png").write_bytes(_png_header(10_000, 10_000))
    os.mkfifo(im / "fifo.png")
    (im / "devzero.png").symlink_to("/dev/zero")
    (im / "text.png").write_text("not an image")
    (im / "empty.png").write_bytes(b"")
    (im / "dir.png").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(im / "gif.png", format="GIF")
    (im / "trunc.png").write_bytes((im / "ok.png").read_bytes()[:40])
    # config files
    c = ws / "configs"
    c.mkdir()
    (c / "bomb.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, "
                                 "*c]\n"
                                 "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, "
                                 "*e]\n"
                                 "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, "
                                 "*g]\n"
                                 "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n")
    (c / "name_up.yaml").write_text("name: ../../escaped-run\nepochs: 1\ntrain_subset: 64\nmodel_args: {width: 4}\n"
                                    "threads: 1\ntta: false\n")
    (c / "name_abs.yaml").write_text(f"name: {ws / '_o' / 'abs-run'}\nepochs: 1\ntrain_subset: 64\n"
                                     "model_args: {width: 4}\nthreads: 1\ntta: false\n")
    (c / "unknown.yaml").write_text("epochz: 3\n")
    (c / "wrongtype.yaml").write_text("epochs: ten\n")
    (c / "list.yaml").write_text("- 1\n- 2\n")
    (c / "nonutf8.yaml").write_bytes(b"epochs: \xff\xfe\n")
    (c / "broken.toml").write_text("epochs = [\n")
    (c / "nan.json").write_text('{"lr": NaN}')
    (c / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (c / "bigint.yaml").write_text("epochs: " + "9" * 5000 + "\n")
    (c / "python.yaml").write_text("epochs: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n")
    os.mkfifo(c / "fifo.yaml")
    (c / "devzero.yaml").symlink_to("/dev/zero")
    (c / "empty.yaml").write_text("")
    tool_inputs(ws)
    return ws


# ---- kernel files, tampered run directories for report / visualize / refine -----------------------------------

class _Evil:
    """A pickle that writes pwned_npy.txt into the working directory when unpickled."""

    def __reduce__(self):
        return os.system, ("echo pwned > pwned_npy.txt",)


SECRET = b"SECRET-TOKEN-4f2b9c outside the run\n"


def tool_inputs(ws: Path) -> None:
    """The inputs of the visualize, project, explain, refine, edges --kernel, report and serve cases."""
    k = ws / "kernels"
    k.mkdir()
    np.save(k / "ok.npy", np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    np.save(k / "pickle.npy", np.array([_Evil()], dtype=object), allow_pickle=True)
    (k / "pickle.bin").write_bytes((k / "pickle.npy").read_bytes())
    np.save(k / "3d.npy", np.ones((2, 3, 3)))
    np.save(k / "0x0.npy", np.zeros((0, 0)))
    np.save(k / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    np.save(k / "inf.npy", np.array([[1.0, np.inf]]))
    np.save(k / "bool.npy", np.ones((3, 3), dtype=bool))
    np.save(k / "complex.npy", np.ones((3, 3), dtype=complex))
    np.save(k / "structured.npy", np.zeros((3, 3), dtype=[("a", "i4"), ("b", "f4")]))
    np.save(k / "scalar.npy", np.array(5.0))
    huge = np.lib.format.open_memmap(k / "huge.npy", mode="w+", dtype=np.uint8, shape=(10_000, 10_000))  # sparse
    del huge
    lie = k / "header_lie.npy"   # a header that claims 100000 x 100000 float64 (80 GB), then 1 KB of data
    with open(lie, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})
        fh.write(b"\0" * 1024)
    (k / "kernel.json").write_text("[[1, 0], [0, -1]]")
    (k / "text.npy").write_text("not a numpy file")
    (k / "empty.npy").write_bytes(b"")
    os.mkfifo(k / "fifo.npy")
    (k / "devzero.npy").symlink_to("/dev/zero")
    (k / "dir.npy").mkdir()
    # run directories broken in ways runs_bad does not cover (a separate folder: the runs unit loops over runs_bad)
    (ws / "_o" / "secret.txt").write_bytes(SECRET)
    (ws / "_o" / "rep-dir").mkdir()   # report -o an existing directory

    def variant(name: str, edit) -> None:
        d = ws / "runs_bad2" / name
        shutil.copytree(ws / "run", d)
        edit(d)

    def fifo(name):
        def edit(d):
            (d / name).unlink(missing_ok=True)
            os.mkfifo(d / name)
        return edit

    variant("weights_missing", lambda d: (d / "model.safetensors").unlink())
    variant("metrics_garbage", lambda d: (d / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1}\n{oops\n'))
    variant("metrics_list", lambda d: (d / "metrics.jsonl").write_text("[1, 2]\n\"text\"\n"))
    variant("metrics_nokeys", lambda d: (d / "metrics.jsonl").write_text('{"kind": "step"}\n'))
    variant("metrics_fifo", fifo("metrics.jsonl"))
    variant("summary_fifo", fifo("summary.json"))
    variant("curve_outside", lambda d: ((d / "curve.png").unlink(),
                                        (d / "curve.png").symlink_to(ws / "_o" / "secret.txt")))
    variant("curve_fifo", fifo("curve.png"))
