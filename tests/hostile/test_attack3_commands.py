"""The third attack's findings in commands and the Python API (issue 28, half b): writer flags that replaced a
run's own files, a layer called more than once per forward, tracebacks, unbounded API counts, the dtype rule and
minor wording. Each test failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convscope.errors import ConfigError, ConvscopeError

from .conftest import refused

# -- F3: every writer flag goes through the one guard (_check.output_file / replaceable) ---------------------------

# (command line with {T} for the target, the flag the refusal names); the target is a run's own curve.png
WRITERS = [
    (["matrix", "--input", "4x4", "--kernel", "3x3", "--png", "{T}"], "--png"),
    (["matrix", "--input", "4x4", "--kernel", "3x3", "--svd", "--svd-png", "{T}"], "--svd-png"),
    (["data", "show", "digits", "--out", "{T}"], "--out"),
    (["lr-find", "--epochs", "1", "--steps", "5", "--out", "{T}"], "--out"),
    (["report", "{RUN}", "-o", "{T}"], "-o"),
]


@pytest.mark.parametrize("argv,flag", WRITERS, ids=[" ".join(a[:2]) + " " + f for a, f in WRITERS])
def test_no_writer_flag_replaces_a_runs_own_file(small_run, tmp_path, cli, argv, flag):
    # was: `matrix --png RUN/curve.png` rc 0, "wrote .../curve.png": the run's training curve replaced
    target = small_run.path / "curve.png"
    before = target.read_bytes()
    args = [str(target) if a == "{T}" else str(small_run.path) if a == "{RUN}" else a for a in argv]
    refused(cli(*args, cwd=tmp_path), f"{flag}: {target} ")
    assert target.read_bytes() == before


def test_lr_find_refuses_a_json_beside_its_plot_that_is_not_an_earlier_sweep(tmp_path, cli):
    notes = tmp_path / "plot.json"
    notes.write_text('{"mine": 1}')
    refused(cli("lr-find", "--epochs", "1", "--out", tmp_path / "plot.png", cwd=tmp_path),
            f"--out: {notes} exists and is not the JSON of an earlier lr-find sweep")
    assert notes.read_text() == '{"mine": 1}' and not (tmp_path / "plot.png").exists()


def test_a_writer_replaces_its_own_earlier_picture_and_marks_it(tmp_path, cli):
    png = tmp_path / "m.png"
    for _ in range(2):      # the second run replaces the first's picture: it carries the command's mark
        r = cli("matrix", "--input", "4x4", "--kernel", "3x3", "--png", png, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert b"tEXtconvscope-output\0matrix" in png.read_bytes()[:4096]
    # another command's picture is not matrix's to replace (nor the reverse)
    refused(cli("data", "show", "digits", "--out", png, cwd=tmp_path), f"--out: {png} exists and is not a picture "
            "an earlier `convscope data show` wrote")


def test_the_library_writer_checks_the_path_too(small_run):
    import numpy as np

    from convscope.matrix.display import spectrum_png

    target = small_run.path / "curve.png"
    before = target.read_bytes()
    with pytest.raises(ConfigError, match="exists and is not a picture an earlier `convscope matrix` wrote"):
        spectrum_png(np.array([2.0, 1.0]), target, "t", output="matrix")
    assert target.read_bytes() == before


def test_bench_out_refuses_a_file_that_is_not_earlier_results(tmp_path, cli):
    notes = tmp_path / "notes.json"
    notes.write_text("mine")
    r = cli("bench", "--smoke", "--out", notes, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"--out: {notes} exists and is not the results of an earlier benchmark" in r.stderr
    assert notes.read_text() == "mine"
