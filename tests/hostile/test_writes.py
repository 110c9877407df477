"""Class 1 of issue 28: a write that the file system refuses (size limit, a file where a folder should be, a
full device) is one convscope error naming the file and the cause, and leaves nothing partial behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convscope._atomic import atomic_write_bytes, probe_folder
from convscope.errors import ConvscopeError, WriteError

from .conftest import refused

# A child process under a 4 KiB file-size limit with SIGXFSZ ignored: writing past the limit fails with EFBIG,
# the errno a full disk's ENOSPC shares its handling with (a real condition, not a mocked one).
LIMITED = ("import resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n")


def _limited(body: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIMITED + textwrap.dedent(body), *args],
                          capture_output=True, text=True, timeout=300)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_atomic_write_past_the_size_limit_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "new" / "deeper" / "x.bin"
    r = _limited(textwrap.dedent("""
        from convscope._atomic import atomic_write_bytes
        from convscope.errors import WriteError
        try:
            atomic_write_bytes(sys.argv[1], b"x" * 100_000)
        except WriteError as e:
            print(e)
            sys.exit(3)
    """), str(target))
    assert r.returncode == 3, r.stderr
    assert f"cannot write {target}: File too large" in r.stdout and "ulimit" in r.stdout
    assert _files(tmp_path) == []   # no .part file, and the two folders made for it are gone again


def test_cli_report_past_the_size_limit_is_one_message(small_run, tmp_path):
    out = tmp_path / "rep" / "report.html"
    r = _limited("from convscope.cli import main\nsys.exit(main(sys.argv[1:]))", "report", str(small_run.path),
                 "-o", str(out))
    refused(r, f"cannot write {out}", "File too large")
    assert r.stderr.count("convscope: error:") == 1
    assert not out.parent.exists() or _files(out.parent) == []   # no report, no hidden picture folder


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(WriteError, match=r"cannot write .*f/sub/x\.png: Not a directory; a file stands where"):
        atomic_write_bytes(tmp_path / "f" / "sub" / "x.png", b"data")
    assert _files(tmp_path) == ["f"] and (tmp_path / "f").read_text() == "keep"


def test_write_error_is_still_an_oserror_with_the_path(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / "f" / "x", b"")
    assert isinstance(info.value, ConvscopeError) and info.value.filename == str(tmp_path / "f" / "x")


def test_probe_folder_leaves_no_probe_file_and_no_new_folder_on_failure(tmp_path):
    assert probe_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b" and _files(tmp_path / "a") == ["b"]
    r = _limited("from convscope._atomic import probe_folder\nprobe_folder(sys.argv[1])", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr          # a 2-byte probe fits under 4 KiB
    assert _files(tmp_path / "c") == []          # the probe (.write-probe-*, once .write-test) is gone


def test_refused_train_out_leaves_no_write_test_file(tmp_path, cli):
    (tmp_path / "file").write_text("")
    r = cli("train", "--out", tmp_path / "file" / "run", "--epochs", "1")
    refused(r, str(tmp_path / "file"))
    assert _files(tmp_path) == ["file"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_standard_output_on_a_full_device(cli, tmp_path):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "convscope", "models"], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    refused(r, "cannot write to standard output", "No space left on device")


def test_a_closed_pipe_on_standard_output_ends_quietly():
    # `convscope models | head -0`: the reader is gone before convscope writes; Python ignores SIGPIPE, so every
    # write raises BrokenPipeError, which must not become a traceback
    p = subprocess.Popen([sys.executable, "-m", "convscope", "models"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_named_pipe_or_device_in_the_way_is_refused_and_left_as_it_was(tmp_path):
    """The rename of an atomic write would replace a device node or a FIFO with a regular file (an independent
    attack, run as root, turned /dev/full into a PNG): the writer refuses and the node stays what it was."""
    import stat

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(WriteError, match="named pipe, not a regular file"):
        atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and [p.name for p in tmp_path.iterdir()] == ["pipe.png"]
    r = subprocess.run([sys.executable, "-m", "convscope", "matrix", "--input", "4x4", "--kernel", "3x3",
                        "--png", str(fifo)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "named pipe" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "link.png"            # a symbolic link is replaced itself; the file it named is untouched
    (tmp_path / "target").write_bytes(b"keep")
    link.symlink_to(tmp_path / "target")
    atomic_write_bytes(link, b"new")
    assert (tmp_path / "target").read_bytes() == b"keep" and link.read_bytes() == b"new" and not link.is_symlink()
