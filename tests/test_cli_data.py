"""The `convscope` command, run as a real subprocess."""

import os
import subprocess
import sys

from PIL import Image


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_help_for_every_subcommand():
    assert "data" in run("--help").stdout
    for sub in (["data", "--help"], ["data", "list", "--help"], ["data", "show", "--help"]):
        r = run(*sub)
        assert r.returncode == 0 and "usage:" in r.stdout


def test_data_list_reports_availability():
    r = run("data", "list")
    assert r.returncode == 0
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line and not line.startswith(" ")}
    assert lines["digits"].split()[1] == "yes"
    assert lines["fashion-mnist"].split()[1] == "yes" and "/usr/share/datasets/fashion-mnist" in lines["fashion-mnist"]


def test_data_show_writes_a_png(tmp_path):
    out = tmp_path / "grid.png"
    r = run("data", "show", "digits", "--out", str(out), "--per-class", "5")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 400


def test_errors_are_one_clear_line_not_a_traceback(tmp_path):
    r = run("data", "show", "no-such-set")
    assert r.returncode == 2 and "unknown dataset 'no-such-set'" in r.stderr and "Traceback" not in r.stderr
    r = run("data", "show", "mnist", "--no-download", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and str(tmp_path) in r.stderr and "Traceback" not in r.stderr
