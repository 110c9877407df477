"""The ``convscope`` command: parses arguments and calls library functions, nothing more.

Each subcommand lives in a module exposing ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import signal
import sys
import traceback
from collections.abc import Sequence

from .._atomic import os_error_hint, output_set
from .._cpus import openmp_env_defaults
from .._progress import shown
from .._signals import stop_signals
from ..errors import ConvscopeError, warnings_in_words
from . import (bench_cmd, data_cmd, diagnose_cmd, experiment_cmd, explain_cmd, export_cmd, inspect_cmd, lrfind_cmd,
               matrix_cmd, tensorboard_cmd, train_cmd, tune_cmd, visualize_cmd, web_cmd)

COMMAND_MODULES = [train_cmd, data_cmd, matrix_cmd, inspect_cmd, bench_cmd, visualize_cmd, explain_cmd, experiment_cmd,
                   web_cmd, export_cmd, tune_cmd, diagnose_cmd, lrfind_cmd, tensorboard_cmd]


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="convscope", description="Build, train and look inside convolutional neural networks.")
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    _record_flags(parser)
    return parser


def _record_flags(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command's namespace ``_flags``: argument name -> how its command line spells it (``top_k``
    -> ``--top-k``, ``out`` -> ``-o``, ``run`` -> ``RUN``), for :func:`cli_message`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                flags = {a.dest: a.option_strings[0] if a.option_strings else (a.metavar or a.dest.upper())
                         for a in p._actions if a.dest not in ("help", argparse.SUPPRESS)}
                p.set_defaults(_flags=flags)
                _record_flags(p)


def cli_message(e: ConvscopeError, flags: dict[str, str], sources: dict[str, str] | None = None) -> str:
    """The one place where library errors, which name Python arguments (``top_k: must be ...``), are put in the
    command line's terms (``--top-k: must be ...``). ``sources``: argument name -> the config file that gave its
    value (``--config FILE``), which is named instead of a flag the command line does not hold
    (``FILE: translate: ...``)."""
    text, arg = str(e), getattr(e, "arg", None)
    if not text.startswith((f"{arg}:", f"{arg} ")):
        return text
    if sources and arg in sources:
        return f"{sources[arg]}: {text}"
    if arg in flags:
        return flags[arg] + text[len(arg):]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """The ``convscope`` command: its exit status (0 done, 2 refused, 1 the user's model failed, 130 Ctrl-C).

    Its standard output may be a pipe whose reader stopped early (``convscope eval RUN | head``): the rest of
    the output is dropped quietly, as the Python docs recommend (standard output pointed at /dev/null so that
    the interpreter's final flush cannot fail again), with exit status 1, Python's own for EPIPE. A full disk
    under a redirected standard output is one message.

    In a fresh process (torch not loaded yet) OpenMP threads are told to sleep rather than spin when they wait,
    unless the user chose (convscope/_cpus.py): the runtime reads that once, when torch loads it."""
    if "torch" not in sys.modules:
        openmp_env_defaults(os.environ)
    try:
        status = _run(argv)
        sys.stdout.flush()   # what is still buffered fails here, inside the handlers, not at interpreter exit
        return status
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as e:
        if e.filename is not None or not _stdout_failing(e):
            raise
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"convscope: error: cannot write to standard output: {e.strerror or e}; {os_error_hint(e)}",
              file=sys.stderr)
        return 2


def _stdout_closed() -> bool:
    """Whether standard output is a pipe (or socket) whose reading end is gone: poll reports POLLERR on it."""
    try:
        fd = sys.stdout.fileno()
        p = select.poll()
        p.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))
    except (OSError, ValueError, AttributeError):   # no real stdout (a test's capture): not ours to silence
        return False


def _stdout_failing(e: OSError) -> bool:
    """Whether ``e`` is standard output refusing data (redirected to a full disk, /dev/full): a storage errno
    with no file name. Every file convscope writes goes through convscope/_atomic.py, whose errors name it."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
        return False
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return not sys.stdout.isatty()


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if signum := _load_torch(args):
        print(f"convscope: {signal.Signals(signum).name} while starting; stopped before doing anything",
              file=sys.stderr)
        return 128 + signum
    try:
        # a command that writes a set of files (set_defaults(output_set=True), or a predicate of its arguments)
        # writes all of them or none
        whole = getattr(args, "output_set", False)
        whole = whole(args) if callable(whole) else whole
        # progress on stderr (--quiet: none); torch's threads for a command that runs a model over data
        with warnings_in_words(), shown(not getattr(args, "quiet", False)), \
                (output_set() if whole else contextlib.nullcontext()), _threads(args):
            return int(args.func(args) or 0)
    except ConvscopeError as e:
        print(f"convscope: error: {cli_message(e, getattr(args, '_flags', {}), getattr(args, '_sources', None))}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if type(e) is not KeyboardInterrupt and _user_error(e):   # a subclass the model raised, not Ctrl-C
            return 1
        print("convscope: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, in convscope (re-raised: a crash with its traceback) or in the user's model
        if _user_error(e):
            return 1
        if isinstance(e, OSError) and e.filename is not None:   # the file system said no: not a bug
            print(f"convscope: error: {os_error_message(e)}", file=sys.stderr)
            return 2
        raise
    except BaseException as e:  # SystemExit(0) or a BaseException subclass from the user's model: never a silent 0
        if _user_error(e):
            return 1
        raise


def _load_torch(args: argparse.Namespace) -> int:
    """Import torch with Ctrl-C and SIGTERM held back, and return the signal that came meanwhile (0: none).

    torch's C++ side imports NumPy and only warns when that fails: a Ctrl-C landing inside it left NumPy
    half-initialised under a torch that went on, and the command then crashed with chained ImportErrors, or trained
    to the end and failed on its last import. Commands that need no torch (``torch_free``: the listings, data
    pictures) skip it and stay fast."""
    if getattr(args, "torch_free", False) or "torch" in sys.modules:
        return 0
    with stop_signals() as got:
        import torch  # noqa: F401
    return got[0]


def _threads(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """torch's threads for a command that runs a model over data (``add_threads``): ``--threads``, else the
    user's OMP_NUM_THREADS, else the CPUs free at its start (convscope.training.threads, the one primitive that
    training, serve and refine use too). Other commands: nothing, and no torch loaded here."""
    if not getattr(args, "cpu_threads", False):
        return contextlib.nullcontext()
    from ..training.threads import cpu_threads

    return cpu_threads(args.threads)


def _user_error(e: BaseException) -> bool:
    """Report ``e`` as the user's model's error (its own frames, then one line) when it passed through the user's
    model file; False (nothing printed) when it did not."""
    from ..inspect.target import user_code_frames

    frames = user_code_frames(e)
    if not frames:
        return False
    what = f"{type(e).__name__}: {e}" if not isinstance(e, SystemExit) else f"SystemExit({e.code!r})"
    print("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)), end="", file=sys.stderr)
    print(f"convscope: error: your model raised {what}\n  (in {frames[-1].filename}, line {frames[-1].lineno}; the "
          "traceback above shows your code's frames)" + ("; a model must return class scores, not exit the program"
                                                          if isinstance(e, SystemExit) else ""), file=sys.stderr)
    return True


def os_error_message(e: OSError) -> str:
    """``No such file or directory: '/proc/x'; ...`` plus what to do, for an OSError naming a file."""
    name = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
    return f"{e.strerror or type(e).__name__}: {str(name)!r}; {os_error_hint(e)}"

if __name__ == "__main__":
    sys.exit(main())
