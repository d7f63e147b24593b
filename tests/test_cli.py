"""`plugd` as a person runs it: the ports it cannot have, and port 0.

Each case runs the real command line in a subprocess, on loopback, and reads what a person
reads: one line on stderr and a non-zero exit, never a traceback, and nothing written.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest

from plugd.service.ports import problem
from tests.support import BIN, START_TIMEOUT, PlugdProcess, free_port, stop_process

#: Loopback only and no mDNS; the ports come on the command line.
CONFIG = '[http]\nbind = "127.0.0.1"\n[mdns]\nenabled = false\n'


def plugd(tmp_path: Path, *args: str, user: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """`plugd --simulate` with a configuration on loopback and a state directory in tmp_path."""
    config = tmp_path / "plugd.toml"
    config.write_text(CONFIG)
    config.chmod(0o644)
    return subprocess.Popen([*user, str(BIN / "plugd"), "--simulate", "--config", str(config),
                             "--state-dir", str(tmp_path / "state"), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def refused(tmp_path: Path, *args: str, user: tuple[str, ...] = ()) -> str:
    """The one line plugd gives when it will not start; it exits 1 and writes nothing."""
    proc = plugd(tmp_path, *args, user=user)
    try:
        out, err = proc.communicate(timeout=START_TIMEOUT)
    finally:
        stop_process(proc)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert not (tmp_path / "state").exists(), "a refused start changes nothing"
    return lines[0]


def test_a_busy_page_port_is_one_line_naming_the_port_and_the_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = refused(tmp_path, "--http-port", str(port), "--udp-port", str(free_port()))
    assert line == (f"plugd: cannot start: port {port} is in use (by another program); "
                    "choose another with --http-port or stop the other program")


def test_a_page_port_held_by_another_plugd_names_it(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = PlugdProcess(tmp_path / "other")
    try:
        line = refused(tmp_path, "--http-port", str(other.http), "--udp-port", str(free_port()))
    finally:
        assert other.stop() == 0
    assert line == (f"plugd: cannot start: port {other.http} is in use (by another plugd); "
                    "choose another with --http-port or stop the other program")


def test_a_busy_mesh_port_is_one_line_too(tmp_path: Path) -> None:
    # Another plugd would share the port (SO_REUSEADDR on both sides); this holder does not.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        line = refused(tmp_path, "--http-port", str(free_port(socket.SOCK_STREAM)),
                       "--udp-port", str(port))
    assert line == (f"plugd: cannot start: UDP port {port} (the mesh's) is in use (by another "
                    "program); choose another with --udp-port, the same on every node, or stop "
                    "the other program")


def test_mesh_port_0_is_refused(tmp_path: Path) -> None:
    """The kernel's choice would be a port no other node sends to."""
    line = refused(tmp_path, "--http-port", str(free_port(socket.SOCK_STREAM)), "--udp-port", "0")
    assert line.startswith("plugd: cannot start: the mesh needs a fixed UDP port")
    assert "--udp-port" in line


def test_a_privileged_port_without_root_says_how_to_get_one(tmp_path: Path) -> None:
    unprivileged = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if unprivileged <= 80:
        pytest.skip(f"net.ipv4.ip_unprivileged_port_start is {unprivileged}: port 80 is anyone's")
    user: tuple[str, ...] = ()
    where = tmp_path
    if os.geteuid() == 0:  # as nobody, in a directory of its own (pytest's are root's alone)
        if shutil.which("setpriv") is None:
            pytest.skip("no setpriv (util-linux) to run plugd as nobody")
        user = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        where = Path(tempfile.mkdtemp(prefix="plugd-nobody-"))
        os.chown(where, 65534, 65534)
    try:
        line = refused(where, "--http-port", "80", "--udp-port", str(free_port()), user=user)
    finally:
        if where != tmp_path:
            shutil.rmtree(where)
    assert line == ("plugd: cannot start: port 80 is below 1024, which only root may open; "
                    "choose one from 1024 up with --http-port, or let systemd open it "
                    "(plugd.socket)")


def test_page_port_0_is_any_free_port_printed(tmp_path: Path) -> None:
    proc = plugd(tmp_path, "--http-port", "0", "--udp-port", str(free_port()))
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            raise AssertionError("plugd printed no address") from None
        assert line.startswith("plugd: page on http://127.0.0.1:"), line
        url = line.split()[-1]
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        assert port != 0
        with urllib.request.urlopen(url, timeout=START_TIMEOUT) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        code = stop_process(proc)
    assert code == 0, proc.stderr.read() if proc.stderr else ""


@pytest.mark.parametrize(("door", "port", "code", "expected"), [
    ("http", 8080, errno.EADDRNOTAVAIL, "cannot listen on 10.9.9.9 port 8080: 10.9.9.9 is not an "
                                        "address of this machine; change [http] bind, or leave "
                                        "it empty for every address"),
    ("mesh", 999, errno.EACCES, "UDP port 999 (the mesh's) is below 1024, which only root may "
                                "open; choose one from 1024 up with --udp-port, or run plugd "
                                "as root"),
    ("http", 8080, errno.EMFILE, "cannot listen on port 8080: Too many open files"),
])
def test_the_causes_a_subprocess_cannot_stage_have_their_line(door: str, port: int, code: int,
                                                                expected: str) -> None:
    """A bind address that is not this machine's, a privileged mesh port, anything else."""
    assert problem(door, "10.9.9.9", port, OSError(code, os.strerror(code))) == expected
