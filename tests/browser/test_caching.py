"""What the page costs on the wire: the first visit, and a repeat visit that finds its files in
the browser's cache (counted by Chromium itself, per request, from its network events)."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Page, expect

FIRST_LOAD_BODIES = 60 * 1024  # compressed bodies of every file the first load asks for
REPEAT_VISIT = 5 * 1024  # everything a repeat visit receives over HTTP, headers included


class Wire:
    """Bytes received per request, as Chromium's DevTools protocol reports them (a file taken
    from the cache receives nothing)."""

    def __init__(self, page: Any) -> None:
        self.headers: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.urls: dict[str, str] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.send("Network.enable")

    def _response(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["response"]["url"]
        self.headers[event["requestId"]] = int(event["response"].get("encodedDataLength", 0))

    def _finished(self, event: dict[str, Any]) -> None:
        self.total[event["requestId"]] = int(event["encodedDataLength"])

    def bodies(self) -> int:
        return sum(total - self.headers.get(rid, 0) for rid, total in self.total.items())

    def received(self) -> int:
        return sum(self.total.values())


def visit(page: Page) -> Wire:
    wire = Wire(page.page)
    page.open()
    expect(page.page.locator("#relay-switch")).to_be_visible()
    page.page.wait_for_load_state("networkidle")
    return wire


def test_a_first_visit_stays_small_and_a_repeat_visit_asks_for_the_page_alone(open_page):
    page = open_page()
    first = visit(page)
    assert len(first.total) >= 10, first.urls  # the page, its scripts, styles and uPlot
    assert first.bodies() <= FIRST_LOAD_BODIES, (first.bodies(), first.urls)

    tab = page.page.context.new_page()  # the same browser, its cache warm: a person's next visit
    second = Page(tab, page.plug)
    again = visit(second)
    fetched = sorted(again.urls[rid].split("/", 3)[3] for rid, size in again.total.items() if size)
    assert fetched == [""], fetched  # only the page itself, which answers 304
    assert 0 < again.received() <= REPEAT_VISIT, again.received()
    assert not page.errors and not second.errors
