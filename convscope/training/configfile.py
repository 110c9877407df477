"""Reading training config files: YAML (.yaml/.yml), TOML (.toml) or JSON (.json), bounded and alias-free.

A file holds the keys of :mod:`~convscope.training.config`, flat (``lr: 0.05``) or in sections
(``optim: {lr: 0.05}``); :func:`~convscope.training.config.config_from_dict` validates what it returns.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; anything beyond 1 MiB is not one


def _yaml_loader() -> type:
    """PyYAML's SafeLoader without aliases: ``*name`` repeats a node by reference, so nine lines of aliases
    (the "billion laughs") describe 10**9 strings that any later copy of the config expands. Config files do
    not need them; they are refused when composed, before anything is built."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise ConfigError(f"line {event.start_mark.line + 1}: YAML alias *{event.anchor} is not allowed "
                                  "in config files; write the value out")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
            # PyYAML keeps the last of two equal keys without a word: `lr: 0.1` ... `lr: 0.5` trains at 0.5
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise ConfigError(f"line {line}: key {key!r} is given twice (first on line {seen[key]}); "
                                      "keep one")
                if isinstance(key, (str, int, float, bool)):
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    # YAML 1.1 (PyYAML) reads a float only with a dot and a signed exponent: `lr: 1e-2`, `1e5` and `1.0e5` would be
    # strings, refused as "wrong type" although JSON, TOML and the flags read them as numbers; YAML 1.2 reads
    # them as floats, and so do we (a resolver of this loader only; yaml.SafeLoader is unchanged)
    NoAliasLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_EXP_FLOAT, list("-+0123456789."))
    return NoAliasLoader


_YAML12_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct (json.loads keeps the last of two equal keys without a word)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"key {key!r} is given twice; keep one")
        out[key] = value
    return out


def _read_text(path: Path) -> str:
    """The text of a regular file of at most MAX_CONFIG_BYTES (a FIFO would block, a device never end)."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{path}: is a directory, not a config file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file (a pipe, socket or device); give a config file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {st.st_size:,} bytes; a config file may hold at most {MAX_CONFIG_BYTES:,}")
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES:,} bytes; not a config file")
    try:
        # a byte-order mark (Windows editors write one) is accepted and dropped, for YAML, TOML and JSON alike: it
        # says nothing in UTF-8, and json.loads refused it with Python's "decode using utf-8-sig"
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (a binary file?): byte {e.start} cannot be decoded") from None


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) config file into a dict (not yet validated).
    Regular files of at most 1 MiB only; YAML aliases are refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ConfigError(f"{path}: unknown config format {suffix or '(none)'}; use .yaml, .yml, .toml or .json")
    text = _read_text(path)
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.load(text, Loader=_yaml_loader()) or {}  # noqa: S506 (a SafeLoader subclass)
        elif suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text, object_pairs_hook=_json_object)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    except Exception as e:  # the parsers' own error types differ; all mean "malformed"
        raise ConfigError(f"{path}: malformed {suffix[1:].upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data
