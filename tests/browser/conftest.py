"""Browser tests: the page in Debian's headless Chromium, driven by Playwright, against
`plugd --simulate` processes on loopback.

Skipped as a whole when Chromium or the playwright package is missing (the Makefile installs
both). Playwright's own browser download is never used: it launches /usr/bin/chromium
(or $PLUGD_CHROMIUM).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import PlugdProcess, merged

CHROMIUM = os.environ.get("PLUGD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HERE = Path(__file__).parent
DOCS_SHOTS = HERE.parent.parent / "docs" / "screenshots"
#: A short broadcast interval, so a silent node is offline after 1.5 s (the page is on loopback
#: only, as every PlugdProcess's).
CONFIG = {"mesh": {"interval": 0.5}}
TIMEOUT_MS = 20_000  # generous: a busy CI machine starts Chromium slowly


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PLUGD_CHROMIUM)"
    return None


MISSING = _missing()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MISSING:
        for item in items:
            if HERE in Path(item.fspath).parents:
                item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {MISSING}"))


def expect(target: Any, *args: Any, **kwargs: Any) -> Any:
    """Playwright's `expect`, imported late: without playwright the tests are skipped, not broken."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "plugd_config(tables): the daemon's configuration, beside CONFIG")


@pytest.fixture
def plug(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlugdProcess]:
    marker = request.node.get_closest_marker("plugd_config")
    daemon = PlugdProcess(tmp_path, config=merged(CONFIG, marker.args[0] if marker else None))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for this folder; closed after it, since Playwright's sync API keeps an
    event loop running that would stop the asyncio tests outside it."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A tab on the plug's page, with the few steps every test takes."""

    def __init__(self, page: Any, plug: PlugdProcess) -> None:
        self.page = page
        self.plug = plug
        self.errors: list[str] = []
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))

    def open(self, view: str = "dashboard") -> Page:
        from playwright.sync_api import expect

        self.page.goto(f"{self.plug.url}#{view}", wait_until="domcontentloaded")
        expect(self.page.locator("#conn")).to_have_text("Live")
        return self

    def login(self) -> Page:
        from playwright.sync_api import expect

        page = self.page
        expect(page.locator("#account")).to_have_text("Log in")
        page.click("#account")
        page.fill("#l-password", self.plug.password)
        page.click("#login-form button[type=submit]")
        expect(page.locator("#account")).to_have_text("Log out")
        expect(page.locator("#conn")).to_have_text("Live")
        return self

    def view(self, name: str) -> None:
        self.page.click(f".tabs a[data-view={name}]")

    def shot(self, directory: Path, name: str, full_page: bool = True, docs: bool = True) -> Path:
        """A PNG of the page (a phone's: what its screen shows, bottom bar in place); with
        PLUGD_UPDATE_SCREENSHOTS=1 and `docs`, also the README's copy in docs/screenshots/."""
        path = directory / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        if docs and os.environ.get("PLUGD_UPDATE_SCREENSHOTS"):
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_SHOTS / path.name)
        return path


@pytest.fixture
def open_page(browser: Any, plug: PlugdProcess) -> Iterator[Callable[..., Page]]:
    """open_page(width=1100, scheme="light") -> a fresh context's tab on the plug's page."""
    contexts = []

    def make(width: int = 1100, height: int = 800, scheme: str = "light") -> Page:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      color_scheme=scheme)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return Page(context.new_page(), plug)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go as test artifacts; PLUGD_UPDATE_SCREENSHOTS=1 copies them to docs/."""
    return tmp_path_factory.mktemp("screenshots")
