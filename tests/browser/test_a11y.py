"""Accessibility: axe-core on every view, light and dark, desktop and phone; the page by keyboard
alone; toasts clear of the phone's tab bar.

axe-core is vendored for these tests only (tests/browser/vendor/axe, by packaging/vendor-axe)
and injected into the page here; the page itself never loads it. One daemon serves the module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import PlugdProcess

from .conftest import CONFIG, TIMEOUT_MS, Page, expect

AXE = Path(__file__).parent / "vendor" / "axe" / "axe.min.js"
VIEWS = ["dashboard", "nodes", "recipes", "schedules", "energy", "events", "settings"]
SIZES = {"desktop": (1100, 800), "phone": (360, 780)}
# Never true for the one value the node sends: only the tests switch the relay.
RECIPE = {"name": "Heat when frosty", "sourceNodeId": 777, "sourceThingId": 5, "relation": 3,
          "targetValue": 5, "localThingId": 1, "localValue": 1}
SCHEDULE = {"enabled": True, "days": [0, 1, 2, 3, 4], "at": "07:00", "offset": 0, "action": "on"}

# What axe reports, kept to what a reader needs to fix it.
RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`) }));
}"""


@pytest.fixture(scope="module")
def shared_plug(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlugdProcess]:
    """One daemon with something in every view: a recipe, a schedule, a node heard once (now
    offline), the events they made, and a failed current sensor."""
    daemon = PlugdProcess(tmp_path_factory.mktemp("a11y"), config=CONFIG)
    try:
        with daemon.session() as ws:
            assert ws.ask({"command": "save_recipe", "recipe": RECIPE})["success"]
            assert ws.ask({"command": "save_schedule", "schedule": SCHEDULE})["success"]
        daemon.send_udp(b"777:Kitchen&5:18.00")
        daemon.ask("fault", "adc", "gone")
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def new_tab(browser: Any, shared_plug: PlugdProcess) -> Iterator[Callable[..., Page]]:
    """new_tab(size, scheme) -> a tab on the shared daemon's page in a context of its own."""
    contexts = []

    def make(size: str = "desktop", scheme: str = "light") -> Page:
        width, height = SIZES[size]
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return Page(context.new_page(), shared_plug)

    yield make
    for context in contexts:
        context.close()


def serious(page: Any, where: str) -> list[str]:
    """The serious and critical violations axe finds on the page as it is, one line each."""
    found = page.evaluate(RUN_AXE)
    return [f"{where}: {v['impact']} {v['id']} ({v['help']}): " + "; ".join(v["nodes"]) for v in found]


def error_toast(page: Any) -> Any:
    """An error toast on the screen, as a failed action leaves one."""
    page.evaluate("import('./js/notify.js').then((m) => m.notify('The plug refused: a test', 'error'))")
    toast = page.locator("#toasts .toast.error").last
    expect(toast).to_be_visible()
    return toast


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_axe_finds_nothing_serious_on_any_view(new_tab, size, scheme):
    tab = new_tab(size, scheme).open()
    page = tab.page
    page.evaluate(AXE.read_text())  # by the driver, so the page's own policy need not allow it
    problems: list[str] = []
    page.click("#account")
    expect(page.locator("#login-dialog")).to_be_visible()
    problems += serious(page, "the login dialog")
    page.keyboard.press("Escape")
    tab.login()
    error_toast(page)
    for view in VIEWS:
        tab.view(view)
        expect(page.locator(f"#view-{view}")).to_be_visible()
        if view == "dashboard":
            expect(page.locator("#meter-fault")).to_contain_text("Current sensor fault")
        if view == "nodes":
            expect(page.locator("#node-list li")).to_have_count(2)
        if view in ("recipes", "schedules"):
            expect(page.locator(f"#{view[:-1]}-list li")).to_have_count(1)
        if view == "events":
            expect(page.locator("#event-list li").first).to_be_visible()
        problems += serious(page, f"{view}, {size}, {scheme}")
    assert problems == [], "\n".join(problems)
    assert tab.errors == [] or all("The plug refused: a test" in e for e in tab.errors)


def test_a_sensor_fault_is_told_once_on_the_dashboard(new_tab):
    page = new_tab().open().page
    notice = page.locator("#meter-fault")
    expect(notice).to_contain_text("Current sensor fault: ")
    expect(page.locator(".tile[data-thing='2'] .fault")).to_have_text("not known (sensor fault)")
    fault = notice.inner_text().split("Current sensor fault: ")[1].split(". Power")[0]
    assert page.locator("#view-dashboard").inner_text().count(fault) == 1, fault


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_toasts_stay_clear_of_the_phones_tab_bar(new_tab, scheme):
    page = new_tab("phone", scheme).open().page
    toast = error_toast(page)
    toast_box, tabs_box = toast.bounding_box(), page.locator(".tabs").bounding_box()
    assert toast_box["y"] + toast_box["height"] <= tabs_box["y"], (toast_box, tabs_box)


def focused(page: Any) -> str:
    """The focused element, as `tag#id` or `tag.text` to tell it in a failure."""
    return page.evaluate("""() => {
      const e = document.activeElement, tag = e.tagName.toLowerCase();
      return e.id ? `${tag}#${e.id}` : `${tag}.${e.textContent.trim()}`;
    }""")


def tab_to(page: Any, target: str, most: int = 40) -> None:
    """Press Tab until `target` (as `focused` names it) has the focus."""
    seen = []
    for _ in range(most):
        page.keyboard.press("Tab")
        seen.append(focused(page))
        if seen[-1] == target:
            return
    raise AssertionError(f"Tab never reached {target}; it went through {seen}")


def test_the_page_works_from_the_keyboard(new_tab, shared_plug):
    tab = new_tab().open()
    page = tab.page
    # Every view's tab is reached with Tab and opened with Enter.
    for view in ("settings", "dashboard"):
        tab_to(page, f"a.{view.capitalize()}")
        page.keyboard.press("Enter")
        expect(page.locator(f"#view-{view}")).to_be_visible()
    # The switch, logged out: Space asks for the password in a dialog that keeps the focus.
    tab_to(page, "button#relay-switch")
    page.keyboard.press("Space")
    expect(page.locator("#login-dialog")).to_be_visible()
    expect(page.locator("#l-password")).to_be_focused()
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("document.querySelector('#login-dialog').contains(document.activeElement)")
    page.keyboard.press("Escape")  # gives up, and the focus is back where it was
    expect(page.locator("#login-dialog")).to_be_hidden()
    expect(page.locator("#relay-switch")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#l-password")).to_be_focused()
    page.keyboard.type(shared_plug.password)
    page.keyboard.press("Enter")
    switch = page.locator("#relay-switch")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_be_focused()
    page.keyboard.press("Space")  # logged in now: one key, one switch
    expect(switch).to_have_attribute("aria-checked", "false")
    assert shared_plug.ask("status")["relay"] is False


def test_form_errors_go_when_fixed_and_come_into_sight(new_tab):
    tab = new_tab("phone").open()
    page = tab.login().page
    tab.view("settings")
    interval = page.locator("#s-interval")
    error = page.locator("[data-field='mesh.interval'] .field-error")
    interval.fill("0")
    page.click("#settings-form button[type=submit]")
    expect(error).to_contain_text("between 0.1 and 3600")
    expect(interval).to_have_attribute("aria-invalid", "true")
    interval.fill("0.5")  # fixed, not saved yet: the old complaint is gone
    expect(error).to_be_empty()
    expect(interval).not_to_have_attribute("aria-invalid", "true")
    # A file refused long after the click, with the form scrolled away: its error is brought up.
    page.evaluate("window.scrollTo(0, 0)")
    page.set_input_files("#import-file", files=[
        {"name": "broken.json", "mimeType": "application/json", "buffer": b"{not json"}])
    refusal = page.locator("#config-form .form-error")
    expect(refusal).to_contain_text("broken.json is not a JSON file")
    expect(refusal).to_be_in_viewport()
    assert tab.errors == []
