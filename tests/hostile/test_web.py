"""Hostile inputs to the web side: the report's -o, --layer and the run's files (never embedding a file from
outside the run), and serve's --host and --port. Each ends in a clear convscope error naming the flag or file, or a
correct result; never a traceback, a hang or a silently wrong result."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from convscope.errors import ConfigError

from .conftest import time_bound


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
    # digests recorded again (load_run checks curve.png's): only the report's own guard may keep the secret out
    from .test_attack3_serve_runs import rehash

    rehash(run)
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


@pytest.mark.parametrize("threads", [0, True, 1.5, "all", "cpu_limit+1"])
def test_serve_threads_beyond_the_cpus_it_may_use_or_not_a_count(threads, tmp_path):
    from convscope._cpus import cpu_limit
    from convscope.web.server import serve

    if threads == "cpu_limit+1":
        threads = cpu_limit() + 1
    with time_bound(30), pytest.raises(ConfigError, match="^threads: "):   # before binding or loading a run
        serve([tmp_path], port=18765, threads=threads)


def test_serve_address_of_another_machine():
    from convscope.web.server import check_bind, resolve_host

    info = resolve_host("192.0.2.1", 18765)   # TEST-NET-1: never an address of this machine
    with pytest.raises(ConfigError, match="--host 192.0.2.1: not an address of this machine"):
        check_bind(info, "192.0.2.1", 18765)
