"""Running the app: uvicorn in this process, loopback by default; Ctrl-C stops it cleanly."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from pathlib import Path

from .._check import integer, threads as check_threads
from ..errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_host(host: str, port: int) -> tuple:
    """The first (family, type, proto, canonname, sockaddr) ``host`` resolves to: a name that is not an address
    (nor resolves to one) is a ConfigError naming --host, before anything else is said about it."""
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"--host {host!r}: empty; give an address such as 127.0.0.1 (this machine only)")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"--host {host!r}: not an address ({why}); give an IP address such as 127.0.0.1 (this "
                          "machine only) or 0.0.0.0 (every interface, with --allow-remote), or a name that "
                          "resolves") from None
    if not infos:
        raise ConfigError(f"--host {host!r}: resolves to no address; give an IP address such as 127.0.0.1")
    return infos[0]


def check_bind(info: tuple, host: str, port: int) -> None:
    """Bind ``host:port`` once and let it go, so a port in use or an address of another machine is a clear
    ConfigError now rather than a uvicorn log line and exit status 3 later."""
    family, kind, proto, _, addr = info
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn does: a TIME_WAIT port is free
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"--port {port}: already in use on {host}; stop what listens there or choose "
                                  "another --port, e.g. --port 8001") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror}); give one of its "
                                  "addresses, 127.0.0.1, or 0.0.0.0 for every interface") from None
            if e.errno == errno.EACCES:
                raise ConfigError(f"--port {port}: permission denied ({e.strerror}); ports below 1024 need "
                                  "privileges: choose --port 8000 or above") from None
            raise ConfigError(f"--host {host} --port {port}: cannot bind ({e.strerror or e}); choose another "
                              "--host or --port") from None


def serve(paths: list[Path], host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False,
          extra_hosts: list[str] = (), threads: int | None = 1) -> None:
    """Serve the runs under ``paths`` until interrupted. A non-loopback ``host`` needs ``allow_remote``.
    ``threads``: torch's threads while serving, 1 by default (each run answers one forward at a time, and a Draw
    forward is under a millisecond: too little work to split; docs/web.md, "Threads"); None: as other commands,
    the CPUs free at the start (convscope.training.threads)."""
    import uvicorn

    from ..training.threads import cpu_threads
    from .app import create_app

    integer(port, "port", 1, 65535)
    if threads is not None:
        integer(threads, "threads", 1)
        check_threads(threads)
    info = resolve_host(host, port)   # first: a non-address is that, whatever else is wrong with it
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"--host {host}: serving beyond this machine exposes your runs to the network; "
                          "add --allow-remote if you mean it")
    check_bind(info, host, port)
    if not is_loopback(host):
        print(f"WARNING: serving on {host}:{port}: anyone who can reach this address can use the server "
              "(no authentication). Only requests whose Host header names 127.0.0.1, localhost, the bound address "
              "or an --allow-host name are answered.", file=sys.stderr)
    with cpu_threads(threads) as n:   # before the app: its background unit-page computation runs on this count
        app = create_app(paths, host, port, extra_hosts)
        print(f"convscope: serving {len(app.state.runs)} run(s) at http://{host}:{port}/  ({n} torch thread"
              f"{'s' if n != 1 else ''}; Ctrl-C stops)", flush=True)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=3)
        uvicorn.Server(config).run()
