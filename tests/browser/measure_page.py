"""Figures for the page, not a test: what the first load transfers, and how long a relay change
made through plugctl takes to show on the page.

    .venv/bin/python -m tests.browser.measure_page [--rounds 20]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

from plugd.ctl import ask
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, CONFIG, MISSING
from tests.support import PlugdProcess

WATCH = """() => {
  window.__shown = [];
  const sw = document.querySelector('#relay-switch');
  let last = sw.getAttribute('aria-checked');
  new MutationObserver(() => {
    const state = sw.getAttribute('aria-checked');
    if (state === last) return;  // set again to the same value by a periodic push
    last = state;
    const changed = performance.timeOrigin + performance.now();
    requestAnimationFrame(() => window.__shown.push({state, changed,
                                                     painted: performance.timeOrigin + performance.now()}));
  }).observe(sw, {attributes: true, attributeFilter: ['aria-checked']});
}"""


def page_weight(page, plug: PlugdProcess) -> None:
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(plug.url)
    page.wait_for_selector("#conn >> text=Live")
    page.wait_for_load_state("networkidle")
    rows, wire, raw, gz = [], 0, 0, 0
    for r in responses:
        if r.url.endswith("/ws"):
            continue
        body = r.body()
        sizes = r.request.sizes()
        on_wire = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        zipped = len(gzip.compress(body, 9))
        rows.append((r.url.split(str(plug.http), 1)[1], len(body), zipped, on_wire,
                     r.headers.get("content-encoding", "-")))
        wire, raw, gz = wire + on_wire, raw + len(body), gz + zipped
    print(f"{'file':42} {'raw':>8} {'gzip -9':>8} {'on wire':>8}  encoding")
    for name, size, zipped, on_wire, encoding in rows:
        print(f"{name:42} {size:8} {zipped:8} {on_wire:8}  {encoding}")
    print(f"{'total (' + str(len(rows)) + ' requests)':42} {raw:8} {gz:8} {wire:8}")


def relay_latency(page, plug: PlugdProcess, rounds: int) -> None:
    page.evaluate(WATCH)
    tokens = [(plug.state / "cli-token", (plug.state / "cli-token").read_text().strip(), "")]
    url = f"ws://127.0.0.1:{plug.http}/ws"
    delays = []
    for i in range(rounds):
        state = "on" if i % 2 == 0 else "off"
        started = time.time() * 1000
        ask(url, {"command": "switch", "state": state}, 5.0, tokens)  # what plugctl does
        page.wait_for_function(f"window.__shown.length > {i}")
        shown = page.evaluate(f"window.__shown[{i}]")
        assert shown["state"] == ("true" if state == "on" else "false")
        delays.append((shown["changed"] - started, shown["painted"] - started))
    changed = [d[0] for d in delays]
    painted = [d[1] for d in delays]
    print(f"relay change via plugctl's request -> page ({rounds} rounds, ms; includes the "
          "WebSocket connect and token login plugctl does):")
    print(f"  switch updated: median {statistics.median(changed):.1f}, max {max(changed):.1f}")
    print(f"  next frame:     median {statistics.median(painted):.1f}, max {max(painted):.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if MISSING:
        print(f"cannot measure: {MISSING}")
        return 1
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        plug = PlugdProcess(Path(tmp), config=CONFIG)
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(bypass_csp=True)  # the watcher is injected by this tool
            page_weight(page, plug)
            relay_latency(page, plug, args.rounds)
            browser.close()
        finally:
            plug.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
