"""The ``convscope`` process: ``python -m convscope`` and the console script both start here. Around
:func:`convscope.cli.main` it does what only a whole process may: a Ctrl-C while the command's own modules load
(the first few tenths of a second) ends as every other Ctrl-C does, and once the command has answered, further
Ctrl-Cs are ignored, so that they do not interrupt the interpreter's own clean-up (torch's exit handlers printed
"Exception ignored ... KeyboardInterrupt" tracebacks)."""

import signal
import sys


def main() -> int:
    try:
        from convscope.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:   # before the command's handlers exist, or a second Ctrl-C inside them
        print("convscope: interrupted", file=sys.stderr)
        return 130
    finally:
        if signal.getsignal(signal.SIGINT) is not None:   # None: set from C, not Python's to change
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
