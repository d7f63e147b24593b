"""Which state directory the daemon on a port keeps, told to plugctl on this machine only.

plugctl logs in with the token file in the daemon's state directory. Two
daemons on one machine (a real one and a simulated one, say) keep two, so
plugctl must find the one of the daemon on the port it addresses. The daemon
writes a small record per listening port into its runtime directory (which
only its user can write) and removes it at stop; nothing of it goes over the
network, so an unauthenticated client learns nothing of where the token lives.

The runtime directory: `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`),
else `/run/plugd` as root, else `$XDG_RUNTIME_DIR/plugd`, else
`plugd-<uid>` in the temporary directory, made with mode 0700.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path


def runtime_dirs(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where records may be, in the order the daemon picks the first it can use."""
    found = []
    if environ.get("RUNTIME_DIRECTORY"):
        found.append(Path(environ["RUNTIME_DIRECTORY"].split(":")[0]))
    found.append(Path("/run/plugd"))
    if environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(environ["XDG_RUNTIME_DIR"]) / "plugd")
    found.append(Path(tempfile.gettempdir()) / f"plugd-{os.getuid()}")
    return list(dict.fromkeys(found))


def _record(directory: Path, port: int) -> Path:
    return directory / f"http-{port}.json"


def announce(port: int, state_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Record that this process serves `port` with `state_dir`; returns the record's path.

    OSError when no runtime directory can be written.
    """
    last: OSError | None = None
    for directory in runtime_dirs(environ):
        if directory == Path("/run/plugd") and os.geteuid() != 0 and not directory.is_dir():
            continue  # only root may make it
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK):
                raise PermissionError(f"{directory} is not writable")
            path = _record(directory, port)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "state_dir": str(state_dir.resolve())}))
            tmp.chmod(0o644)
            tmp.replace(path)
            return path
        except OSError as err:
            last = err
    raise last or OSError("no runtime directory")


def withdraw(path: Path) -> None:
    """Remove this process's record (a killed daemon's is recognised as stale)."""
    try:
        record = json.loads(path.read_text())
        if record.get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def state_dir_of(port: int, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The state directory of the live daemon serving `port` on this machine, or None."""
    for directory in runtime_dirs(environ):
        path = _record(directory, port)
        try:
            if path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                continue  # anyone could have written it
            record = json.loads(path.read_text())
            pid, state = int(record["pid"]), Path(record["state_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid):
            return state
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
