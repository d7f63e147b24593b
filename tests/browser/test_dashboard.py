"""The dashboard: logging in, the relay switch both ways, the chart's history, reconnecting."""

from __future__ import annotations

import pytest

from tests.support import wait_for

from .conftest import expect


def relay_on(plug) -> bool:
    return plug.ask("status")["relay"]


def test_login_with_the_initial_password_then_offers_to_change_it(open_page):
    tab = open_page().open()
    page = tab.page
    page.click("#account")
    page.fill("#l-password", "not the password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("[data-field=password] .field-error")).to_have_text("wrong password")
    page.click("#login-dialog [data-action=close]")
    tab.login()
    expect(page.locator("#view-settings")).to_be_visible()
    expect(page.locator("#password-hint")).to_be_visible()
    assert tab.errors == []


def test_a_switch_without_a_session_logs_in_in_place_then_switches(open_page, plug):
    tab = open_page().open()
    page = tab.page
    page.click("#relay-switch")
    dialog = page.locator("#login-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#login-why")).to_have_text("Log in to make changes.")
    expect(page.locator("#l-password")).to_be_focused()
    page.fill("#l-password", "not the password")
    page.keyboard.press("Enter")
    expect(page.locator("#login-dialog [data-field=password] .field-error")).to_have_text("wrong password")
    expect(dialog).to_be_visible()
    assert relay_on(plug) is False
    page.fill("#l-password", plug.password)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    # The click that asked for the login switches the relay: no second click.
    expect(page.locator("#relay-switch")).to_have_attribute("aria-checked", "true")
    assert relay_on(plug) is True
    expect(page.locator("#account")).to_have_text("Log out")
    expect(page.locator("#view-dashboard")).to_be_visible()
    assert page.evaluate("location.hash") == "#dashboard"
    assert tab.errors == []


def test_a_login_given_up_with_escape_drops_the_action(open_page, plug):
    tab = open_page().open()
    page = tab.page
    page.click("#relay-switch")
    expect(page.locator("#login-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#login-dialog")).to_be_hidden()
    tab.login()
    tab.view("dashboard")
    page.click("#override-switch")
    # Requests on one socket are answered in order: a switch still held would have come first.
    wait_for(lambda: plug.ask("status")["override"], "the override to reach the plug")
    assert relay_on(plug) is False
    expect(page.locator("#relay-switch")).to_have_attribute("aria-checked", "false")
    assert tab.errors == []


def test_the_switch_drives_the_relay_and_follows_plugctl(open_page, plug):
    tab = open_page().open().login()
    page = tab.page
    tab.view("dashboard")
    switch = page.locator("#relay-switch")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    wait_for(lambda: relay_on(plug), "the relay to switch on")
    expect(page.locator("#relay-state")).to_have_text("On")
    # The simulated 1000 W load now draws power, and the chart has a point each second.
    expect(page.locator(".tile[data-thing='2'] .value")).not_to_have_text("0.0 W")

    assert plug.ctl("off").returncode == 0
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(page.locator("#relay-state")).to_have_text("Off")

    override = page.locator("#override-switch")
    override.click()
    expect(override).to_have_attribute("aria-checked", "true")
    assert plug.ask("status")["override"] is True

    tab.view("events")  # the changes are in the log, newest first
    expect(page.locator("#event-list li").first).to_contain_text("override on")
    assert tab.errors == []


def test_on_for_a_while_counts_down_and_goes_off(open_page, plug):
    tab = open_page().open().login()
    page = tab.page
    tab.view("dashboard")
    expect(page.locator("#auto-off")).to_be_hidden()
    page.select_option("#relay-for", "300")
    page.locator("#relay-switch").click()
    expect(page.locator("#auto-off")).to_contain_text("Switches off in 4:5")  # 4:59 or 4:58
    assert plug.ask("status")["autoOffAt"] is not None
    assert "off at" in plug.ctl("status").stdout  # plugctl says when, too
    assert plug.ctl("off").returncode == 0  # a switch off ends the count everywhere
    expect(page.locator("#auto-off")).to_be_hidden()
    assert plug.ask("status")["autoOffAt"] is None
    page.select_option("#relay-for", "")
    assert plug.ctl("on", "--for", "1").returncode == 0  # another client's, one second
    expect(page.locator("#relay-state")).to_have_text("Off")  # and it went off by itself
    assert tab.errors == []


@pytest.mark.plugd_config({"protection": {"max_power": 500.0, "hold": 0.0}})
def test_a_protection_trip_is_shown_until_the_user_switches_on(open_page, plug):
    tab = open_page().open().login()
    page = tab.page
    tab.view("dashboard")
    page.click("#relay-switch")  # the simulated 1000 W is above the 500 W limit
    trip = page.locator("#trip")
    expect(trip).to_be_visible()
    expect(trip).to_contain_text("Protection switched the plug off")
    expect(page.locator("#relay-switch")).to_have_attribute("aria-checked", "false")
    assert plug.ask("status")["tripped"]
    plug.ctl("load", "100")
    page.click("#relay-switch")  # switching on clears the trip
    expect(trip).to_be_hidden()
    expect(page.locator("#relay-switch")).to_have_attribute("aria-checked", "true")
    assert tab.errors == []


def test_broken_chips_are_shown_and_cleared(open_page, plug):
    tab = open_page().open().login()
    page = tab.page
    tab.view("dashboard")
    plug.ask("fault", "adc", "gone")
    plug.ask("fault", "display", "on")
    page.click("#relay-switch")  # the display fails when the library next writes to it
    sensor, hardware = page.locator("#meter-fault"), page.locator("#hardware-fault")
    expect(sensor).to_contain_text("Current sensor fault")
    expect(page.locator(".tile[data-thing='2'] .fault")).to_contain_text("sensor fault")
    expect(hardware).to_contain_text("The display does not work: simulated GPIO fault")
    plug.ask("fault", "adc", "none")
    plug.ask("fault", "display", "off")
    expect(sensor).to_be_hidden(timeout=60_000)  # the sampler's next retry finds the chip
    expect(hardware).to_be_hidden(timeout=60_000)
    assert tab.errors == []


def test_the_chart_starts_from_the_daemons_history(open_page, plug):
    wait_for(lambda: len(plug_history(plug)) >= 6, "six seconds of history")
    page = open_page().open().page
    expect(page.locator("#chart canvas")).to_have_count(1)
    page.wait_for_function("Number(document.querySelector('#chart').dataset.points) >= 6")
    # More points than the page can have sampled itself since it loaded, one a second.
    points, seconds = page.evaluate("[Number(document.querySelector('#chart').dataset.points),"
                                    " performance.now() / 1000]")
    assert points > seconds + 1


def plug_history(plug) -> list:
    with plug.session(login=False) as ws:
        return ws.ask({"command": "request_history"})["history"]


def test_the_page_reconnects_after_the_daemon_restarts(open_page, plug):
    tab = open_page().open().login()
    page = tab.page
    tab.view("dashboard")
    plug.stop()
    expect(page.locator("#banner")).to_be_visible()
    expect(page.locator("#banner-text")).to_contain_text("Not connected to the plug")
    expect(page.locator("#relay-switch")).to_be_disabled()
    plug.start()
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.locator("#conn")).to_have_text("Live")
    # The session cookie outlives the restart: still logged in, the switch still works.
    expect(page.locator("#account")).to_have_text("Log out")
    page.click("#relay-switch")
    wait_for(lambda: relay_on(plug), "the relay to switch on after the restart")
    assert tab.errors == [] or all("WebSocket" in e or "Failed to load" in e for e in tab.errors)


@pytest.mark.plugd_config({"http": {"open_reading": False}})
def test_a_plug_closed_to_reading_asks_to_log_in_first(open_page, plug):
    page = open_page().page
    page.goto(plug.url)
    expect(page.locator("#login-dialog")).to_be_visible()
    expect(page.locator("#login-why")).to_have_text("This plug shows nothing until you log in.")
    expect(page.locator(".tile[data-thing='2'] .value")).to_have_text("—")
    page.fill("#l-password", plug.password)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-dialog")).to_be_hidden()
    expect(page.locator("#relay-switch")).to_be_enabled()
    expect(page.locator(".tile[data-thing='2'] .value")).to_have_text("0.0 W")
