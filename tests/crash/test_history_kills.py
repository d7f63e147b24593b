"""SIGKILL the history's writer at random moments: every acknowledged flush survives, nothing
half-written shows, and the database passes SQLite's integrity check after each kill."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from plugd.service.energydb import DB_FILE

from .history_writer import BASE

SEED = int(os.environ.get("PLUGD_CRASH_SEED", "20261126"))
KILLS = int(os.environ.get("PLUGD_CRASH_KILLS", "25"))
ROOT = Path(__file__).resolve().parents[2]


def check(path: Path) -> set[int]:
    """The minutes kept, after checking the database is whole and its tables agree."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        minutes = db.execute("SELECT start, wh FROM minute").fetchall()
        assert all(wh == 1.0 for _, wh in minutes), minutes  # each minute written whole, once
        for table in ("hour", "day", "month"):  # one transaction: the rollups hold the same
            (total,) = db.execute(f"SELECT coalesce(sum(wh), 0) FROM {table}").fetchone()
            assert total == len(minutes), (table, total, len(minutes))
    return {(start - BASE) // 60 for start, _ in minutes}


@pytest.mark.timeout(600)
def test_acknowledged_flushes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    acknowledged: set[int] = set()
    sent = 0
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, "-m", "tests.crash.history_writer", str(tmp_path),
                                  str(sent)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert child.stdout is not None
        wanted = rng.randint(1, 20)
        for _ in range(wanted):  # the kill lands while the next flushes are being written
            line = child.stdout.readline()
            assert line.startswith("ok "), f"the writer stopped: {line!r}"
            acknowledged.add(int(line.split()[1]))
        child.kill()
        child.wait()
        sent = max(acknowledged) + 2  # past any flush that was in flight
        kept = check(tmp_path / DB_FILE)
        assert acknowledged <= kept, f"seed {SEED}: lost {sorted(acknowledged - kept)[:5]}"
