"""Which state directory the daemon on a port keeps, told to plugctl on this machine only.

plugctl logs in with the token file in the daemon's state directory. Two
daemons on one machine (a real one and a simulated one, say) keep two, so
plugctl must find the one of the daemon on the port it addresses. The daemon
writes a small record per listening port (`http-<port>.json`: its pid and
state directory) into its runtime directory, which only its user can write,
and removes it at stop. Nothing of it goes over the network, so an
unauthenticated client learns nothing of where the token lives.

The daemon's runtime directory: `$RUNTIME_DIRECTORY` (systemd's
`RuntimeDirectory=`), else `/run/plugd` as root, else `$XDG_RUNTIME_DIR/plugd`,
else `plugd-<uid>` in the temporary directory, made with mode 0700. plugctl
looks in each of these in turn and follows only a record of a live process in
a directory nobody else could have written.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

#: Where a root daemon keeps its records: /run is root's alone.
SYSTEM_DIR = Path("/run/plugd")
#: Mode bits that let someone other than the owner write.
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def runtime_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The daemon's own runtime directory: the first of the documented choices that applies."""
    if environ.get("RUNTIME_DIRECTORY"):  # systemd may list several, colon-separated
        return Path(environ["RUNTIME_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return SYSTEM_DIR
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "plugd"
    return _temporary()


def lookup_dirs(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where plugctl looks for records: the daemon of another user (systemd's, root's) chose
    by its own environment, so every choice this user can name is searched."""
    found = []
    if environ.get("RUNTIME_DIRECTORY"):
        found.append(Path(environ["RUNTIME_DIRECTORY"].split(":")[0]))
    found.append(SYSTEM_DIR)
    if environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(environ["XDG_RUNTIME_DIR"]) / "plugd")
    found.append(_temporary())
    return list(dict.fromkeys(found))


def _temporary() -> Path:
    return Path(tempfile.gettempdir()) / f"plugd-{os.geteuid()}"


def _record(directory: Path, port: int) -> Path:
    return directory / f"http-{port}.json"


def announce(port: int, state_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Record that this process serves `port` with `state_dir`; returns the record's path.

    Written atomically (a reader sees the old record or the new one, never half).
    OSError when the runtime directory cannot be made, is not this user's alone
    (someone made it first in a shared place), or cannot be written.
    """
    directory = runtime_dir(environ)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & OTHERS_WRITE:
        raise PermissionError(f"runtime directory {directory} is not a directory this user "
                              "alone can write")
    path = _record(directory, port)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"pid": os.getpid(), "state_dir": str(state_dir.resolve())}))
        tmp.chmod(0o644)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


def withdraw(path: Path) -> None:
    """Remove this process's record at stop; one another process has written since is left."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass  # gone already, or not ours: a killed daemon's record is recognised as stale


def state_dir_of(port: int, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The state directory of the live daemon serving `port` on this machine, or None.

    A record is followed only if its directory and itself are writable by their
    owner alone, that owner being root, this user, or one root gave a directory
    in a place of root's (systemd's `DynamicUser=` in /run): a record another
    user could have planted must not choose which token plugctl sends.
    """
    for directory in lookup_dirs(environ):
        path = _record(directory, port)
        try:
            owner = _trusted_owner(directory)
            info = path.lstat()
            if (owner is None or info.st_uid not in (0, owner) or not stat.S_ISREG(info.st_mode)
                    or info.st_mode & OTHERS_WRITE):
                continue
            record = json.loads(path.read_text())
            pid, state = int(record["pid"]), Path(record["state_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid):
            return state
    return None


def _trusted_owner(directory: Path) -> int | None:
    """The owner of a directory only its owner can write, if that owner is to be believed."""
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & OTHERS_WRITE:
        return None
    if info.st_uid in (0, os.geteuid()):
        return info.st_uid
    parent = directory.parent.lstat()  # only root makes directories in a place of root's alone
    return info.st_uid if parent.st_uid == 0 and not parent.st_mode & OTHERS_WRITE else None


def _alive(pid: int) -> bool:
    if pid <= 0:  # 0 and below name process groups, not a daemon
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
