"""Wave-2 hostile inputs: kernel files, output folders, metrics.jsonl, the report's files and -o, serve's
address and port, --nproc and empty layer lists. Each must end in a clear convscope error naming the flag or
file at fault (or a correct result), never a traceback, a hang or a silently wrong result."""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import ConfigError
from convscope.inspect.edges import parse_kernel
from convscope.runs import RunError

from .conftest import time_bound

# ---- edges --kernel files (items 26, 27) ------------------------------------------------------------------------


def _npy_header(shape, dtype="<f8") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buf = np.lib.format.magic(1, 0)
    h = repr(header).encode("latin1")
    pad = 64 - (len(buf) + 2 + len(h) + 1) % 64
    h += b" " * pad + b"\n"
    return buf + len(h).to_bytes(2, "little") + h


def test_kernel_header_lie_is_refused_before_allocating(tmp_path):
    p = tmp_path / "lie.npy"
    p.write_bytes(_npy_header((100_000, 100_000)) + b"\0" * 1024)   # claims 80 GB
    with time_bound(10), pytest.raises(ConfigError, match="--kernel.*at most 1024x1024"):
        parse_kernel(str(p))


def test_kernel_truncated_npy_is_refused(tmp_path):
    p = tmp_path / "short.npy"
    p.write_bytes(_npy_header((3, 3)) + b"\0" * 16)   # 72 bytes claimed, 16 held
    with pytest.raises(ConfigError, match="--kernel.*truncated"):
        parse_kernel(str(p))


def test_kernel_oversized_npy_is_refused(tmp_path):
    p = tmp_path / "big.npy"
    np.save(p, np.zeros((2000, 3)))
    with pytest.raises(ConfigError, match="--kernel.*at most"):
        parse_kernel(str(p))


@pytest.mark.parametrize("content", [b"", b"not a numpy file", b"\x93NUMPY"])
def test_kernel_empty_or_text_npy(tmp_path, content):
    p = tmp_path / "k.npy"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match="--kernel.*not a NumPy .npy file"):
        parse_kernel(str(p))


def test_kernel_object_npy_is_not_unpickled(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="--kernel.*Python objects"):
        parse_kernel(str(p))


def test_kernel_fifo_does_not_hang(tmp_path):
    p = tmp_path / "fifo.npy"
    os.mkfifo(p)
    with time_bound(10), pytest.raises(ConfigError, match="--kernel.*FIFO"):
        parse_kernel(str(p))


def test_kernel_devzero_link_and_folder(tmp_path):
    link = tmp_path / "zero.npy"
    link.symlink_to("/dev/zero")
    with time_bound(10), pytest.raises(ConfigError, match="--kernel.*character device"):
        parse_kernel(str(link))
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(ConfigError, match="--kernel.*folder"):
        parse_kernel(str(tmp_path / "dir.npy"))
    with pytest.raises(ConfigError, match="--kernel.*no such"):
        parse_kernel(str(tmp_path / "missing.npy"))


def test_kernel_json_file_is_read_as_json(tmp_path):
    p = tmp_path / "kernel.json"
    p.write_text("[[1, 0], [0, -1]]")
    assert parse_kernel(str(p)).tolist() == [[1, 0], [0, -1]]
    p.write_text("{oops")
    with pytest.raises(ConfigError, match="--kernel.*not a JSON list"):
        parse_kernel(str(p))


def test_kernel_json_object_message():
    with pytest.raises(ConfigError, match="expected a 2-D list of numbers.*JSON object"):
        parse_kernel('{"a": 1}')


def test_kernel_valid_npy_unchanged(tmp_path):
    p = tmp_path / "ok.npy"
    k = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.save(p, k)
    assert parse_kernel(str(p)).tolist() == k.tolist()
    assert parse_kernel("[[1, -1]]").tolist() == [[1, -1]]


def test_cli_kernel_fifo(tmp_path, cli):
    os.mkfifo(tmp_path / "fifo.npy")
    r = cli("edges", "--limit", "5", "--out", tmp_path / "o", "--kernel", tmp_path / "fifo.npy", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--kernel" in r.stderr


# ---- metrics.jsonl (item 28) ----------------------------------------------------------------------------------


@pytest.fixture
def run_copy(small_run, tmp_path):
    """The small run's Run object pointed at a fresh folder whose metrics.jsonl the test writes."""
    return dataclasses.replace(small_run, path=tmp_path)


@pytest.mark.parametrize("text, match", [
    ('{"kind": "epoch", "epoch": 1}\n{oops\n', r"metrics.jsonl, line 2: not JSON"),
    ("[1, 2]\n", r"metrics.jsonl, line 1: expected a JSON object.*list"),
    ('\n"text"\n', r"metrics.jsonl, line 2: expected a JSON object.*str"),
    (b"\xff\xfe", r"metrics.jsonl: not UTF-8"),
])
def test_metrics_lines_that_are_not_objects(run_copy, text, match):
    p = run_copy.path / "metrics.jsonl"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunError, match=match):
        _ = run_copy.metrics


def test_metrics_fifo_does_not_hang(run_copy):
    os.mkfifo(run_copy.path / "metrics.jsonl")
    with time_bound(10), pytest.raises(RunError, match="metrics.jsonl.*FIFO"):
        _ = run_copy.metrics


def test_metrics_valid_and_missing(run_copy, small_run):
    assert run_copy.metrics == []
    (run_copy.path / "metrics.jsonl").write_bytes((small_run.path / "metrics.jsonl").read_bytes())
    assert run_copy.metrics and all(isinstance(m, dict) for m in run_copy.metrics)


@pytest.mark.parametrize("line", ['{"kind": "step"}', '{"kind": "epoch", "epoch": "x"}'])
def test_training_data_refuses_records_without_keys(run_copy, line):
    from convscope.web.compute import training_data
    from convscope.web.runs import RunEntry

    (run_copy.path / "metrics.jsonl").write_text(line + "\n")
    with pytest.raises(RunError, match="metrics.jsonl: record 1"):
        training_data(RunEntry("x", run_copy.path, _run=run_copy))


# ---- report: -o, the run's files, --layer (items 3, 29, 33) ---------------------------------------------------


def test_report_out_checks(tmp_path):
    from convscope.web.report import _check_out

    assert _check_out(tmp_path) == tmp_path / "report.html"
    assert _check_out(tmp_path / "new" / "r.html") == tmp_path / "new" / "r.html"
    with pytest.raises(ConfigError, match="-o /proc/x.html: cannot write"):
        _check_out(Path("/proc/x.html"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="-o .*a file stands where a folder is needed"):
        _check_out(tmp_path / "file" / "r.html")


def test_report_layer_names(small_run):
    from convscope.web.report import _unit_layer
    from convscope.web.runs import RunEntry

    entry = RunEntry("r", Path(small_run.path).resolve())
    with pytest.raises(ConfigError, match="named by role"):
        _unit_layer(entry, "3", None)
    with pytest.raises(ConfigError, match="--layer ' ': empty"):
        _unit_layer(entry, " ", None)
    with pytest.raises(ConfigError, match="--layer 'ReLU': names"):
        _unit_layer(entry, "ReLU", None)


def test_report_does_not_embed_a_file_outside_the_run(small_run, tmp_path):
    import shutil

    from convscope.web import build_report

    run = tmp_path / "run"
    shutil.copytree(small_run.path, run)
    secret = b"SECRET-outside-the-run\n"
    (tmp_path / "secret.png").write_bytes(secret)
    (run / "curve.png").unlink()
    (run / "curve.png").symlink_to(tmp_path / "secret.png")
    outside = tmp_path / "outside"                  # the run's inspect/ folder a link to pictures elsewhere
    outside.mkdir()
    (outside / "visualize-conv1.png").write_bytes(secret)
    shutil.rmtree(run / "inspect", ignore_errors=True)
    (run / "inspect").symlink_to(outside)
    (tmp_path / "out").mkdir()                      # -o an existing folder: the report goes in it
    out = build_report(run, tmp_path / "out", max_units=1)
    assert out == tmp_path / "out" / "report.html"
    html = out.read_text()
    assert "<html" in html.lower() and base64.b64encode(secret).decode() not in html


def test_cli_report_out_proc(small_run, cli):
    r = cli("report", small_run.path, "-o", "/proc/forbidden.html", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "-o /proc/forbidden.html" in r.stderr


# ---- serve (item 30) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["not-an-address", "999.1.1.1", ""])
def test_serve_host_not_an_address(host, tmp_path):
    from convscope.web.server import serve

    for remote in (False, True):
        with time_bound(30), pytest.raises(ConfigError, match="--host.*(not an address|empty)"):
            serve([tmp_path], host=host, port=18765, allow_remote=remote)


def test_serve_port_in_use(tmp_path):
    from convscope.web.server import serve

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        with pytest.raises(ConfigError, match=f"--port {s.getsockname()[1]}: already in use"):
            serve([tmp_path], port=s.getsockname()[1])
    finally:
        s.close()


def test_serve_address_of_another_machine():
    from convscope.web.server import check_bind, resolve_host

    info = resolve_host("192.0.2.1", 18765)   # TEST-NET-1: never an address of this machine
    with pytest.raises(ConfigError, match="--host 192.0.2.1: not an address of this machine"):
        check_bind(info, "192.0.2.1", 18765)


# ---- train --nproc (item 31) ----------------------------------------------------------------------------------


def test_nproc_bounds():
    from convscope.cli.launch import check_nproc

    check_nproc(1)
    with pytest.raises(ConfigError, match="--nproc 100000: this machine has"):
        check_nproc(100_000)


@pytest.mark.parametrize("value, match", [("0", "--nproc: must be at least 1"), ("-1", "--nproc: must be at least 1"),
                                          ("1000", "--nproc 1000: this machine has")])
def test_cli_nproc(cli, tmp_path, value, match):
    r = cli("train", "--nproc", value, "--out", tmp_path / "r", "--epochs", "1", "--train-subset", "64", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert match in r.stderr


# ---- empty layer lists and --out (items 1, 32) ----------------------------------------------------------------


@pytest.mark.parametrize("value", [" ", ",", " , ", ""])
def test_layer_arg_empty(small_run, value):
    from convscope.cli.inspect_cmd import _layer_arg

    model = small_run.model
    with pytest.raises(ConfigError, match="--layers .*names no layer"):
        _layer_arg(model, value, "--layers")
    assert _layer_arg(model, None) is None


def test_out_dir_checks(tmp_path):
    from convscope._atomic import writable_folder

    def _make_out_dir(out):       # what the inspection commands call for --out
        return writable_folder(out, f"--out {out}", "--out inspect")

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="--out .*give a folder"):
        _make_out_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match="--out /proc/forbidden: cannot create"):
        _make_out_dir(Path("/proc/forbidden"))
    _make_out_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())


@pytest.mark.parametrize("argv", [["sparsity", "--layers", " "], ["features", "--layers", ","],
                                  ["filters", "--layer", " "]])
def test_cli_empty_layer_lists(small_run, cli, tmp_path, argv):
    r = cli(argv[0], small_run.path, *argv[1:], "--out", tmp_path, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and argv[1] in r.stderr and "names no layer" in r.stderr


def test_cli_out_is_a_file(small_run, cli, tmp_path):
    (tmp_path / "f").write_text("x")
    r = cli("filters", small_run.path, "--out", tmp_path / "f", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--out" in r.stderr and "give a folder" in r.stderr
    assert (tmp_path / "f").read_text() == "x"
