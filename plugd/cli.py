"""`plugd`, the daemon's command line."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

from plugd import __version__
from plugd.errors import ConfigError, PlugdError
from plugd.service.config import DEFAULT_PATH, Config, load
from plugd.service.systemd import RepeatFilter, journal_handler, listen_socket


def parser() -> argparse.ArgumentParser:
    """The `plugd` command line: every option overrides a key of the configuration file."""
    p = argparse.ArgumentParser(
        prog="plugd", description="Smart-plug daemon: relay, mesh of ESP8266-compatible nodes, "
                                  "recipes, and a page over WebSockets.")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help=f"configuration file (default {DEFAULT_PATH}; none under --simulate)")
    p.add_argument("--simulate", action="store_true",
                   help="run against simulated chips; mesh on loopback, page on port 8080")
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    p.add_argument("--gen-key", action="store_true",
                   help="print a new [mesh] mesh_key (192 random bits) and exit")
    p.add_argument("--http-port", type=int, metavar="N",
                   help="port of the page and /ws (0: any free port, printed on stdout)")
    p.add_argument("--udp-port", type=int, metavar="N", help="mesh port (ESP8266 nodes use 2390)")
    p.add_argument("--state-dir", metavar="DIR", help="where things, recipes and nodes are kept")
    p.add_argument("--node-name", metavar="NAME", help="this node's name on the mesh")
    p.add_argument("--node-id", type=int, metavar="N", help="this node's id (default: from the MAC)")
    p.add_argument("--broadcast", action="append", metavar="ADDR",
                   help="send the mesh broadcast here (repeatable; default: every interface)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"plugd {__version__}")
    return p


OPTION_KEYS = {"http_port": "http.port", "udp_port": "mesh.udp_port", "state_dir": "state.dir",
               "node_name": "node.name", "node_id": "node.id", "broadcast": "mesh.broadcast",
               "log_level": "log.level"}


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration keys the command line sets, as `parse` takes them."""
    return {key: getattr(args, option) for option, key in OPTION_KEYS.items()
            if getattr(args, option) is not None}


def setup_logging(level: str) -> RepeatFilter:
    """To the journal with structured fields under systemd, else to stderr; repeats summarised."""
    handler = journal_handler() or logging.StreamHandler(sys.stderr)
    repeats = RepeatFilter()
    handler.addFilter(repeats)
    logging.basicConfig(handlers=[handler], format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("plugd").setLevel(level.upper())
    return repeats


async def serve(config: Config, reload_config: Any, repeats: RepeatFilter) -> int:
    """Run the daemon until SIGTERM or SIGINT; the exit code (0 after a clean stop)."""
    from plugd.service.daemon import Daemon

    daemon = Daemon(config, reload_config=reload_config, repeats=repeats)
    passed = listen_socket()
    try:
        await daemon.start(passed)
    except (PlugdError, OSError) as err:
        # One line on stderr (the journal keeps it too), as for a configuration error.
        print(f"plugd: cannot start: {err}", file=sys.stderr, flush=True)
        return 1
    if passed is None and config.http.port == 0:  # the kernel chose: say which
        host = config.http.bind or "localhost"
        host = f"[{host}]" if ":" in host else host
        print(f"plugd: page on http://{host}:{daemon.web.port}/", flush=True)
    try:
        await daemon.run()
    finally:
        await daemon.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`plugd`: read the configuration, set up logging, serve; errors become one line, not a traceback."""
    args = parser().parse_args(argv)
    if args.gen_key:
        print(secrets.token_urlsafe(24))  # 32 characters of 64 kinds: far beyond MIN_KEY_BITS
        return 0

    def read() -> Config:
        return load(args.config, overrides(args), simulate=args.simulate)

    try:
        config = read()
    except ConfigError as err:
        print(f"plugd: configuration error: {err}", file=sys.stderr)
        return 2
    if args.check_config:
        source = args.config or (DEFAULT_PATH if DEFAULT_PATH.exists() and not args.simulate
                                 else "built-in defaults")
        print(f"plugd: configuration OK ({source})")
        return 0
    repeats = setup_logging(config.log.level)
    faulthandler.enable()  # a watchdog abort then leaves the stuck loop's stack in the journal
    try:
        return asyncio.run(serve(config, read, repeats))
    except KeyboardInterrupt:
        return 130
