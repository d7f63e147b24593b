"""The page on a 360 px phone and a desktop, light and dark; the README's screenshots.

PLUGD_UPDATE_SCREENSHOTS=1 copies the screenshots to docs/screenshots/, and
PLUGD_SCREENSHOT_SECONDS=N lets the simulated load change for N seconds first, so the
chart has a history worth showing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support import wait_for

from .conftest import expect

VIEWS = ["dashboard", "nodes", "recipes", "events", "settings"]
PEERS = [b"777:Kitchen&5:18.00&6:45.50",
         b"10223344:SmartPlugEsp&1:1.00&2:1523.75&3:412.30&4:13:05:09 - 24.11.2026"]
RECIPES = [
    {"name": "Heat when cold", "sourceNodeId": 777, "sourceThingId": 5, "relation": 3,
     "targetValue": 19, "localThingId": 1, "localValue": 1},
    {"name": "Off when warm", "sourceNodeId": 777, "sourceThingId": 5, "relation": 2,
     "targetValue": 21, "localThingId": 1, "localValue": 0},
]


@contextmanager
def peers_talking(plug) -> Iterator[None]:
    """Two ESP nodes broadcasting (to loopback) more often than the 1.5 s that makes one offline."""
    stop = threading.Event()

    def talk() -> None:
        while not stop.is_set():
            for payload in PEERS:
                plug.send_udp(payload)
            stop.wait(0.4)

    thread = threading.Thread(target=talk, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def populate(plug) -> None:
    """A plug worth a picture: relay on, a load that changes, two recipes."""
    with plug.session() as ws:
        for recipe in RECIPES:
            assert ws.ask({"command": "save_recipe", "recipe": recipe})["success"]
    assert plug.ctl("on").returncode == 0
    seconds = float(os.environ.get("PLUGD_SCREENSHOT_SECONDS", "0"))
    loads = (1400, 900, 1800, 600, 1200) if seconds else (1400,)
    for watts in loads:
        plug.ctl("load", str(watts))
        wait_for(lambda: plug.ask("status")["power"] > 0, "power")
        threading.Event().wait(seconds / len(loads))


def show(tab, view: str) -> None:
    """Open a view and wait until it shows what `populate` made, painted."""
    page = tab.page
    tab.view(view)
    expect(page.locator(f"#view-{view}")).to_be_visible()
    if view == "nodes":
        expect(page.locator("#node-list .badge", has_text="online")).to_have_count(2)
    if view == "recipes":
        expect(page.locator("#recipe-list li")).to_have_count(2)
    # Two more frames drawn: the chart's and the list's last changes are on the screen.
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_phone_never_scrolls_sideways(open_page, plug, shots, scheme):
    with peers_talking(plug):
        populate(plug)
        tab = open_page(width=360, height=780, scheme=scheme).open()
        page = tab.page

        def fits(what: str) -> None:
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{what}: {width} px wide on a 360 px screen"

        for view in VIEWS:
            show(tab, view)
            fits(view)
            if view in ("dashboard", "nodes", "recipes"):
                tab.shot(shots, f"{view}-phone-{scheme}", full_page=False, docs=scheme == "dark")
        tab.view("recipes")
        page.click("#recipe-new")
        fits("the recipe editor")
        expect(page.locator(".tabs")).to_be_visible()
    assert tab.errors == []


def test_desktop_screenshots(open_page, plug, shots):
    with peers_talking(plug):
        populate(plug)
        tab = open_page(width=1100, height=800).open()
        for view in ("dashboard", "nodes", "recipes"):
            show(tab, view)
            assert tab.shot(shots, f"{view}-desktop").stat().st_size > 10_000
    assert tab.errors == []
