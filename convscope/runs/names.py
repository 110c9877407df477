"""Run names, checked without importing torch (the CLI validates ``--name`` before anything heavy loads)."""

from __future__ import annotations

import os

from ..errors import ConfigError


def check_run_name(name: str | None) -> None:
    """A run name is one plain folder name inside the runs directory: no path separators, not absolute, not
    empty, not "." or ".." (a name like "../../x" would put the run outside --runs-dir)."""
    if name is None:
        return
    bad = (not isinstance(name, str) or name.strip() in ("", ".", "..") or "/" in name or "\\" in name
           or "\0" in name or os.path.isabs(name) or (os.altsep is not None and os.altsep in name))
    if bad:
        raise ConfigError(f"name: {name!r} is not a plain run name; a run name is one folder name inside "
                          "--runs-dir (letters, digits, '-', '_', '.'; no '/', no '..'); use --out PATH to put a "
                          "run elsewhere")
