"""Running the app: uvicorn in this process, loopback by default; Ctrl-C stops it cleanly."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from ..errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(paths: list[Path], host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False,
          extra_hosts: list[str] = (), threads: int | None = 1) -> None:
    """Serve the runs under ``paths`` until interrupted. A non-loopback ``host`` needs ``allow_remote``."""
    import torch
    import uvicorn

    from .app import create_app

    if not is_loopback(host):
        if not allow_remote:
            raise ConfigError(f"--host {host}: serving beyond this machine exposes your runs to the network; "
                              "add --allow-remote if you mean it")
        print(f"WARNING: serving on {host}:{port}: anyone who can reach this address can use the server "
              "(no authentication). Only requests whose Host header names 127.0.0.1, localhost, the bound address "
              "or an --allow-host name are answered.", file=sys.stderr)
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: expected 1..65535")
    if threads:
        torch.set_num_threads(threads)   # one forward at a time per run; more threads only contend
    app = create_app(paths, host, port, extra_hosts)
    print(f"convscope: serving {len(app.state.runs)} run(s) at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=3)
    uvicorn.Server(config).run()
