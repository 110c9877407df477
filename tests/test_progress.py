"""Progress of long commands (issue 26): the one helper, convscope/_progress.py, and every long command on it.

Non-terminal standard error gets a line per stage with the count done (and an ETA once one unit is done); a
terminal gets a tqdm bar; ``--quiet`` silences both; standard output never carries progress."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from convscope import _progress as P
from tests.conftest import run_cli

LINE = re.compile(r"^(?P<desc>.+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+), \d+ (s|min \d+ s)(, ETA [^;]+)?"
                  r"(; (?P<postfix>.+))?$")


def stages(stderr: str) -> dict[str, list[tuple[int, int]]]:
    """desc -> [(done, total), ...] of the progress lines in ``stderr``."""
    out: dict[str, list[tuple[int, int]]] = {}
    for line in stderr.splitlines():
        m = LINE.match(line)
        if m:
            out.setdefault(m["desc"], []).append((int(m["done"]), int(m["total"])))
    return out


def finished(stderr: str, prefix: str) -> tuple[int, int]:
    """The last (done, total) of the one stage whose name starts with ``prefix``; its count ran to the total."""
    named = {d: v for d, v in stages(stderr).items() if d.startswith(prefix)}
    assert named, f"no progress line starting {prefix!r} in:\n{stderr}"
    (desc, counts), = named.items()
    assert counts[0][0] == 0 and counts[-1][0] == counts[-1][1], (desc, counts)
    assert [d for d, _ in counts] == sorted(d for d, _ in counts), counts    # counts only go up
    return counts[-1]


# ---- the helper ------------------------------------------------------------------------------------------------

def test_duration_and_counted_give_elapsed_and_eta_in_words():
    assert [P.duration(s) for s in (0.4, 38, 165, 3900)] == ["0 s", "38 s", "2 min 45 s", "1 h 05 min"]
    assert P.counted(1, 4, 10.0, "step") == "1/4 steps, 10 s, ETA 30 s"      # the rest at the pace so far
    assert P.counted(4, 4, 12.0, "batch") == "4/4 batches, 12 s"             # done: no ETA
    assert P.counted(0, 4, 0.0, "unit") == "0/4 units, 0 s"                  # nothing done: no pace yet
    # a resumed run: 10 of 30 steps were done by an earlier process, 5 more in this one's 10 s: 15 left, 30 s
    assert P.counted(15, 30, 10.0, "step", initial=10) == "15/30 steps, 10 s, ETA 30 s"
    assert P.counted(10, 30, 0.0, "step", initial=10) == "10/30 steps, 0 s"      # none done here yet: no pace


def test_track_is_silent_unless_shown_and_lines_otherwise(capsys, monkeypatch):
    assert list(P.track(range(3), "work")) == [0, 1, 2]
    assert capsys.readouterr().err == ""                                    # the Python API: silent by default
    monkeypatch.setattr(P, "MIN_INTERVAL", 0.0)                              # every update a line
    with P.shown():
        assert list(P.track(range(3), "work", unit="step")) == [0, 1, 2]
        P.stage("a one-off stage")
    with P.shown(False):
        list(P.track(range(3), "quiet work"))
    err = capsys.readouterr().err
    assert stages(err) == {"work": [(0, 3), (1, 3), (2, 3), (3, 3)]} and "a one-off stage" in err


def test_track_counts_an_item_once_its_work_is_done(capsys, monkeypatch):
    """The count after item i is i + 1 only once the loop body for item i has run."""
    monkeypatch.setattr(P, "MIN_INTERVAL", 0.0)
    seen = []
    with P.shown():
        for i in P.track(["a", "b"], "items", unit="item"):
            seen.append((i, stages(capsys.readouterr().err)["items"][-1]))
    assert seen == [("a", (0, 2)), ("b", (1, 2))]


def test_lines_are_throttled_to_a_pipe_but_first_and_last_always_come():
    buf = io.StringIO()
    b = P.Bar("many", 1000, "batch", stream=buf)
    for _ in range(1000):
        b.update()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "many: 0/1000 batches, 0 s" and lines[-1].startswith("many: 1000/1000 batches")
    assert len(lines) <= 4                          # well under a second of work: no line between


def test_a_stage_with_a_name_per_part_a_postfix_and_output_lines(capsys, monkeypatch):
    """What training needs: a bar that starts at ``initial`` (a resumed run), renamed per epoch, with running
    figures after the count, and the command's own lines on standard output, never among the progress."""
    monkeypatch.setattr(P, "MIN_INTERVAL", 0.0)
    with P.bar("epoch 2/3", 6, "step", initial=2, show=True) as b:
        b.set_postfix(loss="0.512", acc="0.843")
        b.update()
        b.set_description("epoch 3/3")
        b.write("epoch   2/3  loss 0.5120")
        b.update(3)
    out, err = capsys.readouterr()
    assert out == "epoch   2/3  loss 0.5120\n"
    untimed = [re.sub(r"\b\d+ (min \d+ )?s\b", "T", line) for line in err.splitlines()]    # the clock's part aside
    assert untimed == ["epoch 2/3: 2/6 steps, T", "epoch 2/3: 3/6 steps, T, ETA T; loss=0.512, acc=0.843",
                       "epoch 3/3: 6/6 steps, T; loss=0.512, acc=0.843"]
    assert LINE.match(err.splitlines()[1])["postfix"] == "loss=0.512, acc=0.843"
    with P.shown(), P.bar("quiet", 4, show=False) as b:     # the caller said no: nothing, whatever shown() says
        b.set_postfix(loss="1")
        b.write("an epoch line")
        b.update(4)
    assert capsys.readouterr() == ("", "")


# ---- every long command, as a user runs it (stderr a pipe) ------------------------------------------------------

def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr
    assert not stages(r.stdout), r.stdout           # progress never on standard output
    return r


def test_visualize_project_topk_sparsity_report_progress(small_run, tmp_path):
    run = small_run.path
    r = _ok(run_cli("visualize", run, "--layer", "conv1", "--channels", "0-3", "--steps", "12", "--limit", "300",
                    "--out", tmp_path))
    assert finished(r.stderr, "visualize conv1: 4 units") == (12, 12)
    assert finished(r.stderr, "visualize: best natural images by mean") == (1, 1)   # 300 images, one batch
    r = _ok(run_cli("project", run, "--layer", "conv1", "--channels", "0-2", "--k", "2", "--limit", "200",
                    "--out", tmp_path))
    assert finished(r.stderr, "project conv1") == (3, 3)
    top = _ok(run_cli("topk", run, "--layer", "conv1", "--limit", "1200", "--out", tmp_path))
    assert finished(top.stderr, "topk: top 9 of 1,200 images") == (3, 3)            # 500 + 500 + 200
    r = _ok(run_cli("sparsity", run, "--limit", "600", "--out", tmp_path))
    assert finished(r.stderr, "sparsity: value ranges") == (2, 2) and finished(r.stderr, "sparsity: counting") == (2, 2)
    r = _ok(run_cli("report", run, "-o", tmp_path / "r.html"))
    assert finished(r.stderr, "report: unit pages of conv1") == (8, 8)             # width 8: 8 channels
    for what in ("summary, curves and confusion", "sparsity on", "the edge experiment", "conv1 as a matrix"):
        assert f"report: {what}" in r.stderr, r.stderr
    # --quiet: no progress at all, the command's own output unchanged
    q = _ok(run_cli("topk", run, "--layer", "conv1", "--limit", "1200", "--out", tmp_path,
                    "--quiet"))
    assert q.stderr == "" and q.stdout == top.stdout


def test_explain_audit_and_refine_report_through_the_one_helper(small_run, tmp_path):
    r = _ok(run_cli("explain", small_run.path, "--audit", "--limit", "8", "--method", "saliency,gradcam",
                    "--out", tmp_path))
    assert finished(r.stderr, "explain --audit: 8 images") == (5, 5)               # 2 methods + 3 controls
    assert re.search(r"^  saliency: [\d.]+ s$", r.stderr, re.M)                    # its per-method line: stderr now
    assert "saliency: " not in r.stdout.split("| method |")[0]
    r = _ok(run_cli("experiment", "refine", small_run.path, "--train-limit", "100", "--test-limit", "50",
                    "--seeds", "0,1", "--variants", "top", "--steps", "1", "--eval-every", "1", "--k", "1",
                    "--bn", "frozen", "--bn-images", "20", "--out", tmp_path / "refine"))
    assert finished(r.stderr, "refine conv3: variant runs") == (2, 2)              # 1 variant x 2 seeds
    assert "baseline test accuracy" in r.stderr and "baseline test accuracy" not in r.stdout
    q = _ok(run_cli("experiment", "refine", small_run.path, "--train-limit", "100", "--test-limit", "50",
                    "--seeds", "0", "--variants", "top", "--steps", "1", "--eval-every", "1", "--k", "1",
                    "--bn", "frozen", "--bn-images", "20", "--out", tmp_path / "refine2", "--quiet"))
    assert q.stderr == ""


EPOCH = re.compile(r"^epoch +\d+/2  loss \d\.\d{4}  train \d\.\d{4}  test \d\.\d{4}  \d+ img/s$")   # epoch_line
TRAIN = ["train", "--model", "mlp", "--train-subset", "512", "--batch-size", "16", "--epochs", "2", "--threads", "1"]


def test_training_progress_through_a_pipe_is_the_helpers_lines_and_its_epoch_lines_are_unchanged(tmp_path):
    r = _ok(run_cli(*TRAIN, "--out", tmp_path / "r"))
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("epoch")] == r.stdout.splitlines()[:2]
    assert all(EPOCH.match(ln) for ln in r.stdout.splitlines()[:2]), r.stdout
    assert "\r" not in r.stderr
    lines = [LINE.match(ln) for ln in r.stderr.splitlines()]
    assert lines and all(lines), r.stderr                                        # progress lines only
    counts = [(int(m["done"]), int(m["total"])) for m in lines]
    assert counts[0] == (0, 64) and counts[-1] == (64, 64) and counts == sorted(counts)   # 2 x 32 steps
    assert lines[0]["desc"] == "epoch 1/2" and lines[-1]["desc"] == "epoch 2/2" and lines[-1]["unit"] == "steps"
    assert re.fullmatch(r"loss=\d\.\d{3}, acc=\d\.\d{3}, img_s=\d+", lines[-1]["postfix"]), lines[-1]["postfix"]
    q = _ok(run_cli(*TRAIN, "--quiet", "--out", tmp_path / "q"))
    assert q.stderr == "" and not any(ln.startswith("epoch") for ln in q.stdout.splitlines())


def test_bench_counts_its_training_runs(tmp_path):
    r = _ok(run_cli("bench", "--smoke", "--recipes", "fast", "--yardstick", "0", "--max-seconds", "30",
                    "--out", tmp_path / "b.json", timeout=600))
    assert finished(r.stderr, "bench: training runs") == (1, 1)


def _on_a_terminal(*args: str) -> tuple[str, bytes]:
    """``convscope ARGS`` with stderr a pseudo-terminal (never sized, as under some CI runners: tqdm alone would
    draw nothing there) and stdout a pipe: (what the terminal got, standard output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "convscope", *args], stdout=subprocess.PIPE, stderr=slave,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            p.kill()
            pytest.fail("no output from the pseudo-terminal in 300 s")
        try:
            data = os.read(master, 4096)
        except OSError:       # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out, _ = p.communicate(timeout=60)
    os.close(master)
    tty = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, tty
    return tty, out


def test_a_terminal_gets_a_tqdm_bar(small_run, tmp_path):
    """A tqdm bar (carriage returns, a percentage, the count), no plain stage lines."""
    tty, out = _on_a_terminal("visualize", str(small_run.path), "--layer", "conv1", "--channels", "0-1", "--steps",
                              "30", "--no-natural", "--out", str(tmp_path))
    assert "\r" in tty and re.search(r"visualize conv1: 2 units optimized together: +\d+%\|", tty), tty
    assert re.search(r"\| *\d+/30 \[", tty) and not stages(tty.replace("\r", "\n"))
    assert b"layer conv1: 2 units" in out


def test_training_on_a_terminal_gets_the_helpers_bar_with_its_figures_and_the_epoch_lines_on_stdout(tmp_path):
    tty, out = _on_a_terminal(*TRAIN, "--out", str(tmp_path / "r"))
    assert "\r" in tty and re.search(r"epoch [12]/2: +\d+%\|", tty), tty                 # the bar, named per epoch
    assert re.search(r"\| *\d+/64 \[[^\]]*loss=\d\.\d{3}, acc=\d\.\d{3}, img_s=\d+\]", tty), tty
    assert not stages(tty.replace("\r", "\n"))                                          # no pipe lines
    epochs = out.decode().splitlines()[:2]
    assert all(EPOCH.match(ln) for ln in epochs) and "epoch   1/2" in epochs[0], out
