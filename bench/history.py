"""History: a simulated year in the energy history database, its size, a year of hourly buckets
queried, and the page drawing them.

The year is written as the daemon writes it, through EnergyHistory: a reading
a minute (the daemon's once a second sum into the same minute rows), a
household profile (a fridge cycling, an evening heater in winter), with its
retention pruning as it goes. To keep the run short it flushes once per
simulated hour instead of once a minute; a flush's cost is measured apart, with
the minute of readings the daemon's flush carries.

The query is `EnergyHistory.energy` of a year of hours (8760 buckets), the
request_energy answer's JSON encoding included. The page's time is measured in
Debian's Chromium with Playwright, on a `plugd --simulate` process that holds
the year: from asking `/api/energy` for the year's hours to the second frame
after the Energy view's chart drew its 8760 bars, and from a click on Year to
its 12 bars drawn.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import Row, run_alone
from plugd.core.history import DAY, EnergyQuery
from plugd.service.energydb import DB_FILE, EnergyHistory, local_zone

NAME = "History"
SEED = 2026
YEAR = 365 * DAY
QUERIES = 20
DRAWS = 5
SIZE_TARGET_MB = 5.0
QUERY_TARGET_MS = 200.0
DRAW_TARGET_MS = 1000.0


def watts(t: float, rng: random.Random) -> float:
    """A household plug's load at `t`: a fridge 13 minutes in 40, a heater on winter evenings."""
    load = 110.0 if (t // 60) % 40 < 13 else 2.0
    hour = (t % DAY) / 3600
    winter = math.cos(2 * math.pi * (t % YEAR) / YEAR) > 0.3
    if winter and 18 <= hour < 22 and (t // 60) % 15 < 9:
        load += 1500.0
    return load * rng.uniform(0.97, 1.03)


async def simulate_year(state: Path, end: float) -> tuple[EnergyHistory, list[float]]:
    """A year of readings ending at `end`, flushed each simulated hour; the flushes' times (s)."""
    rng = random.Random(SEED)
    db = EnergyHistory(state / DB_FILE, local_zone())
    await db.open()
    first = int(end - YEAR) // 60 * 60
    flushes = []
    for t in range(first, int(end), 60):
        w = watts(t, rng)
        db.record(t + 30, w / 60.0, w)
        if (t - first) % 3600 == 3540:
            began = time.perf_counter()
            assert await db.flush(t + 60), db.fault
            flushes.append(time.perf_counter() - began)
    assert await db.flush(end), db.fault
    return db, flushes


def sizes(state: Path) -> tuple[int, int]:
    """The database file's size and the size of it with its WAL and shared memory files."""
    main = (state / DB_FILE).stat().st_size
    extra = sum(p.stat().st_size for p in state.glob(f"{DB_FILE}-*"))
    return main, main + extra


async def query_times(db: EnergyHistory, end: float) -> tuple[list[float], int]:
    """Times (s) of a year of hours asked and encoded as JSON, and how many buckets came."""
    times, count = [], 0
    for _ in range(QUERIES):
        began = time.perf_counter()
        buckets = await db.energy(EnergyQuery("hour", end - YEAR, end + 3600))
        json.dumps({"period": "hour", "buckets": [[s, round(wh, 4)] for s, wh in buckets]})
        times.append(time.perf_counter() - began)
        count = len(buckets)
    return times, count


DRAW_YEAR = """async ([from, to]) => {
  const { EnergyChart, slots } = await import('./js/energy.js');
  const box = document.createElement('div');
  const note = document.createElement('span');
  box.className = 'chart';
  document.querySelector('#view-energy .card').append(box, note);
  const frame = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const began = performance.now();
  const answer = await (await fetch(`api/energy?period=hour&from=${from}&to=${to}`)).json();
  const fetched = performance.now();
  const chart = new EnergyChart(box, note);
  chart.show(slots('day', new Date(from * 1000), new Date(to * 1000)), answer.buckets);
  await frame();
  const drawn = performance.now();
  const bars = Number(box.dataset.drawn);
  box.remove(); note.remove();
  return { total: drawn - began, draw: drawn - fetched, buckets: answer.buckets.length, bars };
}"""


def page_times(state_db: Path, end: float) -> dict[str, list[float]]:
    """The page's times (ms) to fetch and draw a year of hours, and to draw the Year view."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, MISSING
    from tests.support import PlugdProcess

    if MISSING:
        raise RuntimeError(MISSING)
    with tempfile.TemporaryDirectory(prefix="plugd-bench-") as tmp:
        plug = PlugdProcess(Path(tmp), start=False, config={"log": {"level": "warning"}})
        plug.state.mkdir(parents=True, exist_ok=True)
        (plug.state / DB_FILE).write_bytes(state_db.read_bytes())
        plug.start()
        found: dict[str, list[float]] = {"total": [], "draw": [], "year": []}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 800})
                page.goto(f"{plug.url}#energy")
                page.wait_for_selector("#conn >> text=Live")
                page.wait_for_selector("#energy-chart canvas")
                for _ in range(DRAWS):
                    got = page.evaluate(DRAW_YEAR, [int(end - YEAR), int(end + 3600)])
                    assert got["buckets"] >= 8760 and got["bars"] >= 8760, got
                    found["total"].append(got["total"])
                    found["draw"].append(got["draw"])
                for _ in range(DRAWS):
                    page.click("#energy-spans button[data-span=day]")
                    page.wait_for_selector("#energy-chart[data-drawn='24'], #energy-chart[data-drawn='23'], "
                                           "#energy-chart[data-drawn='25']")
                    began = page.evaluate("performance.now()")
                    page.click("#energy-spans button[data-span=year]")
                    page.wait_for_selector("#energy-chart[data-drawn='12']")
                    found["year"].append(page.evaluate(
                        "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame("
                        "() => done(performance.now()))))") - began)
                browser.close()
        finally:
            plug.stop()
    return found


def run() -> list[Row]:
    """Simulate the year, then measure its size, the query and the page."""
    end = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="plugd-history-") as tmp:
        state = Path(tmp)

        async def measure() -> tuple[list[float], list[float], list[float], int, tuple[int, int]]:
            db, flushes = await simulate_year(state, end)
            try:
                times, count = await query_times(db, end)
                # The daemon's own flush: a minute of readings, a second each.
                minute_flushes = []
                for i in range(20):
                    for s in range(60):
                        db.record(end + 60 * i + s, 0.03, 110.0)
                    began = time.perf_counter()
                    assert await db.flush(end + 60 * i + 60)
                    minute_flushes.append(time.perf_counter() - began)
                size = sizes(state)  # while open: its WAL too
            finally:
                await db.close()
            return flushes, minute_flushes, times, count, size

        began = time.perf_counter()
        flushes, minute_flushes, times, count, (main, total) = asyncio.run(measure())
        took = time.perf_counter() - began
        rows.append(Row(NAME, "database after a simulated year (file; with its WAL, open)",
                        f"{main / 1e6:.2f} MB; {total / 1e6:.2f} MB", f"< {SIZE_TARGET_MB:g} MB",
                        total / 1e6 < SIZE_TARGET_MB))
        rows.append(Row(NAME, "a year written (525,600 minutes, 8,760 flushes)",
                        f"{took:.1f} s; an hour's flush median {statistics.median(flushes) * 1000:.1f} ms"))
        rows.append(Row(NAME, "the daemon's flush (a minute of readings, off the event loop)",
                        f"median {statistics.median(minute_flushes) * 1000:.1f} ms, "
                        f"max {max(minute_flushes) * 1000:.1f} ms"))
        median = statistics.median(times) * 1000
        rows.append(Row(NAME, f"a year of hours queried and encoded ({count} buckets)",
                        f"median {median:.1f} ms, max {max(times) * 1000:.1f} ms",
                        f"< {QUERY_TARGET_MS:g} ms", median < QUERY_TARGET_MS))
        drawn = page_times(state / DB_FILE, end)
    total_ms = statistics.median(drawn["total"])
    rows.append(Row(NAME, "page: a year of hours fetched and drawn (8,760 bars, Chromium)",
                    f"median {total_ms:.0f} ms (drawing {statistics.median(drawn['draw']):.0f} ms)",
                    f"< {DRAW_TARGET_MS:g} ms", total_ms < DRAW_TARGET_MS))
    rows.append(Row(NAME, "page: the Energy view's Year, click to bars drawn",
                    f"median {statistics.median(drawn['year']):.0f} ms"))
    return rows


if __name__ == "__main__":
    run_alone(run)
