"""The systemd units: valid for systemd, sandboxed to an exposure of at most 1.5, and the
sandbox still lets the hardware and CPython work."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SERVICE = UNITS / "plugd.service"
SOCKET = UNITS / "plugd.socket"
EXEC_START = "ExecStart=/usr/bin/plugd "
MAX_EXPOSURE = 1.5
#: --offline= and --recursive-errors= of systemd-analyze came with systemd 250.
MIN_SYSTEMD = 250


def _systemd_version() -> int | None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    done = subprocess.run([analyze, "--version"], capture_output=True, text=True)
    match = re.match(r"systemd (\d+)", done.stdout)
    return int(match.group(1)) if match else None


VERSION = _systemd_version()
needs_analyze = pytest.mark.skipif(
    VERSION is None or VERSION < MIN_SYSTEMD,
    reason=f"needs systemd-analyze of systemd >= {MIN_SYSTEMD} (found: {VERSION or 'none'})")


def settings(unit: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in unit.read_text().splitlines()  # type: ignore[misc]
            if "=" in line and not line.startswith("#")]


@needs_analyze
def test_units_verify(tmp_path: Path) -> None:
    """`verify` insists that ExecStart='s program exists. /usr/bin/plugd is where the Debian
    package puts it, absent here: verify a copy whose ExecStart= names a stub, the rest as is.
    Unknown or misspelt settings are only warnings, so any output fails the test."""
    stub = tmp_path / "plugd"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = SERVICE.read_text()
    assert text.count(EXEC_START) == 1
    (tmp_path / SERVICE.name).write_text(text.replace(EXEC_START, f"ExecStart={stub} "))
    shutil.copy(SOCKET, tmp_path / SOCKET.name)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                           str(tmp_path / SERVICE.name), str(tmp_path / SOCKET.name)],
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_analyze
def test_service_exposure() -> None:
    """--threshold= is the overall exposure level times 10 (default 100, i.e. 10.0)."""
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                           f"--threshold={round(MAX_EXPOSURE * 10)}", str(SERVICE)],
                          capture_output=True, text=True)
    match = re.search(r"Overall exposure level for plugd\.service: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    exposure = float(match.group(1))
    print(f"plugd.service: overall exposure level {exposure}")
    assert done.returncode == 0 and exposure <= MAX_EXPOSURE, done.stdout


def test_sandbox_keeps_the_hardware() -> None:
    """gpiozero reads /proc/cpuinfo and the device tree; lgpio writes a FIFO into $LG_WD."""
    found = settings(SERVICE)
    names = {name for name, _ in found}
    assert not names & {"PrivateDevices", "ProcSubset", "PrivateUsers"}
    assert {value for name, value in found if name == "DeviceAllow"} >= {
        "char-gpiochip rw", "char-i2c rw", "/dev/gpiomem rw"}
    assert ("Environment", "LG_WD=%t/plugd") in found and ("WorkingDirectory", "%t/plugd") in found
    assert ("RuntimeDirectory", "plugd") in found


def test_python_is_fine_with_memory_deny_write_execute() -> None:
    """CPython, ctypes' callbacks (libffi) and plugd's imports under the seccomp rules of
    MemoryDenyWriteExecute=yes, installed by Debian's python3-seccomp before exec."""
    system_python = Path("/usr/bin/python3")
    if not system_python.exists() or subprocess.run(
            [system_python, "-c", "import seccomp"], capture_output=True).returncode != 0:
        pytest.skip("needs /usr/bin/python3 with seccomp (apt-get install python3-seccomp)")
    sandbox = """
import errno, os, seccomp, sys
deny = seccomp.ERRNO(errno.EPERM)
f = seccomp.SyscallFilter(seccomp.ALLOW)
f.add_rule(deny, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, 0x6, 0x6))  # PROT_WRITE|PROT_EXEC
for call in ("mprotect", "pkey_mprotect"):
    f.add_rule(deny, call, seccomp.Arg(2, seccomp.MASKED_EQ, 0x4, 0x4))  # adding PROT_EXEC
f.add_rule(deny, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, 0o100000, 0o100000))  # SHM_EXEC
f.load()
os.execv(sys.argv[1], sys.argv[1:])
"""
    inside = """
import ctypes, mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)
    raise SystemExit("the filter is not in force")
except PermissionError:
    pass
assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)(41) == 42
import ifaddr, plugd.cli, plugd.service.daemon, smbus2
assert ifaddr.get_adapters()
print("ok")
"""
    done = subprocess.run([system_python, "-c", sandbox, sys.executable, "-c", inside],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
