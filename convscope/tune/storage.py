"""Optuna, imported on first use, and the study's storage: an SQLite file in the study folder by default, or any
SQLAlchemy URL Optuna's RDBStorage takes (``postgresql+psycopg://user@host/db`` for several machines).

Every storage runs with Optuna's heartbeat: a worker that dies (SIGKILL, power loss, a lost machine) stops
beating, and after the grace period any other worker of the study marks its trial failed, and
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues the same parameters again. On one machine
(:mod:`.workers`) a dead worker is recognised at once, by its lock file, without waiting for the grace period.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError

HEARTBEAT_S = 10     # a running trial writes its heartbeat this often
GRACE_S = 60         # ... and is declared dead after this long without one (other machines' trials)
MAX_RETRY = 3        # a trial whose worker died is run again at most this many times
SQLITE_TIMEOUT_S = 300   # writers wait this long for SQLite's lock (parallel workers write briefly, in turn)
DB_FILE = "study.db"
OPEN_TRIES = 5    # opening a shared database that another worker is creating at the same instant


def optuna_module() -> Any:
    """Optuna, or a clear error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("convscope tune needs Optuna: pip install 'convscope[tune]' (or pip install optuna)") \
            from None
    optuna.logging.set_verbosity(logging.WARNING)   # convscope prints its own line per trial
    return optuna


def default_url(study_dir: Path) -> str:
    return f"sqlite:///{(Path(study_dir) / DB_FILE).resolve()}"


def open_storage(url: str) -> Any:
    """Optuna's RDBStorage at ``url`` with the heartbeat and the retry of dead workers' trials."""
    optuna = optuna_module()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    elif "://" not in url:
        raise ConfigError(f"--storage {url!r}: expected a database URL such as sqlite:///study.db or "
                          "postgresql+psycopg://user:password@host/dbname")
    for attempt in range(OPEN_TRIES):
        with warnings.catch_warnings():   # heartbeat and the retry callback are marked experimental by Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=retry_callback())
            except ImportError as e:   # the database driver (psycopg, pymysql...) is missing
                raise ConfigError(f"--storage {_redact(url)}: its database driver is not installed ({e}); for "
                                  "PostgreSQL: pip install 'psycopg[binary]' and use postgresql+psycopg://...") \
                    from None
            except Exception as e:   # SQLAlchemy's errors: no server, bad password, no database, a race
                if not type(e).__module__.startswith(("sqlalchemy", "optuna")):
                    raise
                if attempt + 1 < OPEN_TRIES and ("already exists" in str(e) or "duplicate key" in str(e)):
                    # workers on several machines that start at once race to create Optuna's tables: the
                    # loser's CREATE fails; the tables exist when it tries again
                    time.sleep(0.5 + random.random())
                    continue
                raise ConfigError(f"--storage {_redact(url)}: cannot open the study database: "
                                  f"{str(e).splitlines()[0]}") from None
    raise AssertionError("unreachable")


def retry_callback() -> Any:
    optuna = optuna_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def _redact(url: str) -> str:
    """``url`` without its password (error messages end up in logs)."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url
