"""The signed mesh's boot number, kept in the state directory before it is used.

A counter must never repeat across restarts, so the number is written (and
fsynced) before the first datagram is signed with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from plugd.core.meshkey import next_boot
from plugd.errors import ValidationError
from plugd.service.store import StateDir, dump

#: Where the boot number lives in the state directory.
BOOT_FILE = "mesh-boot.json"


def boot_number(state: StateDir, wall: Callable[[], float] = time.time) -> int:
    """This start's boot number, stored before it is used; StoreError if it cannot be."""
    boot = next_boot(state.load(BOOT_FILE, _read_boot, lambda: 0), wall())
    state.write(BOOT_FILE, dump(boot))
    return boot


def _read_boot(obj: object) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int) or obj < 0:
        raise ValidationError("mesh boot number", f"expected a non-negative integer, got {obj!r}")
    return obj
