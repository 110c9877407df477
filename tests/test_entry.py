"""The ``convscope`` process entry (convscope/__main__.py, also the console script): Ctrl-C before the command's
own handlers exist, and Ctrl-C after the command has answered, with real signals in real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Python's own Ctrl-C handler, as a process started from a terminal has it (a background job of a
# non-interactive shell, as in CI, inherits SIGINT ignored, and Python then installs none)
TERMINAL = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"

HOOK = TERMINAL + textwrap.dedent("""
    import os, signal, sys

    class SignalOnImport:          # sends this process SIGINT when MODULE is first looked for, finds nothing
        def find_spec(self, name, path, target=None):
            if name == MODULE:
                os.kill(os.getpid(), signal.SIGINT)
            return None
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_ctrl_c_while_the_command_modules_load_is_a_plain_interrupt():
    """The first tenths of a second import convscope.cli and its commands: a Ctrl-C there printed Python's
    KeyboardInterrupt traceback."""
    r = _run(HOOK + textwrap.dedent("""
        MODULE = "convscope.cli.train_cmd"
        sys.meta_path.insert(0, SignalOnImport())
        sys.argv = ["convscope", "models"]
        from convscope.__main__ import main
        sys.exit(main())
    """))
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stderr.strip() == "convscope: interrupted"


def test_ctrl_c_after_the_command_answered_does_not_interrupt_the_exit():
    """Once the command has returned, Ctrl-C is ignored: a second Ctrl-C used to land in torch's exit handlers
    ("Exception ignored in atexit callback ... KeyboardInterrupt")."""
    r = _run(TERMINAL + textwrap.dedent("""
        import os, signal, sys
        sys.argv = ["convscope", "models"]
        from convscope.__main__ import main
        status = main()
        os.kill(os.getpid(), signal.SIGINT)
        print("exit", status)
        sys.exit(status)
    """))
    assert r.returncode == 0 and r.stdout.strip().endswith("exit 0"), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
