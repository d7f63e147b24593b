"""The Schedules view: add, edit, switch off and delete a schedule, its next run in words, the
location for the sun, and the polar day and night said as such; on a phone too."""

from __future__ import annotations

import re
import time
from zoneinfo import ZoneInfo

import pytest

from plugd.core import schedules as S

from .conftest import expect

BERLIN = {"location": {"latitude": 52.52, "longitude": 13.405}}
NEXT_SUNSET = re.compile(r"Next: (today|tomorrow|on \w+) at \d\d:\d\d, sunset − 30 min")


def schedules_view(open_page, **size):
    tab = open_page(**size).open("schedules").login()
    tab.view("schedules")
    return tab, tab.page


@pytest.mark.plugd_config({"location": BERLIN["location"]})
def test_a_schedule_is_added_edited_switched_off_and_deleted(open_page, plug, shots):
    tab, page = schedules_view(open_page)
    expect(page.locator("#location-state")).to_contain_text("Set: 52.52° N, 13.405° E")
    page.click("#schedule-new")
    page.select_option("#sc-when", "sunset")
    expect(page.locator("#sc-time")).to_be_hidden()
    page.fill("#sc-offset", "-30")
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        page.get_by_label(day, exact=True).check()
    page.select_option("#sc-action", "on")
    page.click("#schedule-form button[type=submit]")
    expect(page.locator("#schedule-form")).to_be_hidden()

    item = page.locator("#schedule-list li").first
    expect(item.locator("h3")).to_have_text("Switch on at sunset − 30 min")
    expect(item).to_contain_text("Mon–Fri")
    expect(item.locator(".next")).to_have_text(NEXT_SUNSET)
    [stored] = plug.ask("schedule", "list")["schedules"]
    assert {k: stored[k] for k in ("at", "offset", "days", "action", "enabled")} == {
        "at": "sunset", "offset": -30, "days": [0, 1, 2, 3, 4], "action": "on", "enabled": True}
    tab.shot(shots, "schedules-desktop", docs=False)

    item.get_by_role("button", name="Edit schedule 1").click()
    expect(page.locator("#schedule-form-title")).to_have_text("Edit schedule 1")
    expect(page.locator("#sc-offset")).to_have_value("-30")
    page.select_option("#sc-when", "time")
    page.fill("#sc-time", "07:15")
    page.fill("#sc-offset", "0")
    page.get_by_label("Saturday", exact=True).check()
    page.select_option("#sc-action", "off")
    page.click("#schedule-form button[type=submit]")
    expect(item.locator("h3")).to_have_text("Switch off at 07:15")
    expect(item).to_contain_text("Mon–Sat")
    expect(item.locator(".next")).to_have_text(re.compile(r"Next: (today|tomorrow|on \w+) at 07:15$"))

    switch = item.get_by_role("switch", name="Schedule 1 enabled")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(item.locator(".next")).to_have_text("Off: it does not run until switched on.")
    assert plug.ask("schedule", "list")["schedules"][0]["enabled"] is False
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")

    delete = item.get_by_role("button", name="Delete")
    delete.click()
    expect(delete).to_have_text("Really delete?")
    delete.click()
    expect(page.locator("#schedules-empty")).to_be_visible()
    assert plug.ask("schedule", "list")["schedules"] == []
    assert tab.errors == []


def test_bad_input_is_explained_and_the_location_is_set_on_the_page(open_page, plug):
    tab, page = schedules_view(open_page)
    expect(page.locator("#location-state")).to_contain_text("Not set")
    page.click("#schedule-new")
    page.select_option("#sc-when", "sunrise")
    page.click("#schedule-form button[type=submit]")
    # Found by the daemon: the sun needs the location; shown under "When".
    expect(page.locator("[data-field=at] .field-error")).to_contain_text("needs the plug's location")
    page.fill("#sc-offset", "-800")
    page.click("#schedule-form button[type=submit]")
    expect(page.locator("[data-field=offset] .field-error")).to_contain_text("between -720 and 720")
    assert plug.ask("schedule", "list")["schedules"] == []
    page.click("#schedule-form [data-action=cancel]")

    page.fill("#loc-lat", "69.6492")  # Tromsø: the midnight sun and the polar night
    page.fill("#loc-lon", "18.9553")
    page.click("#location-form button[type=submit]")
    expect(page.locator("#location-state")).to_contain_text("Set: 69.6492° N, 18.9553° E")
    page.click("#schedule-new")
    page.select_option("#sc-when", "sunrise")
    page.click("#schedule-form button[type=submit]")
    expect(page.locator("#schedule-form")).to_be_hidden()
    schedule = S.parse({"id": 1, "at": "sunrise", "action": "on"}, location=S.Location(69.6492, 18.9553))
    zone = ZoneInfo(plug.ask("schedule", "list")["timezone"] or "UTC")
    shown = S.upcoming(schedule, time.time(), zone, S.Location(69.6492, 18.9553))
    next_line = page.locator("#schedule-list li .next").first
    if shown.sun:
        expect(next_line).to_contain_text(f"The sun does not rise here now ({shown.sun}).")
    else:
        expect(next_line).to_have_text(re.compile(r"Next: .+ at \d\d:\d\d, sunrise"))
    assert tab.errors == []


@pytest.mark.plugd_config({"location": BERLIN["location"]})
def test_the_view_works_on_a_phone(open_page, plug, shots):
    tab, page = schedules_view(open_page, width=390, height=844, scheme="dark")
    page.click("#schedule-new")
    page.select_option("#sc-when", "sunset")
    page.fill("#sc-offset", "-30")
    page.click("#schedule-form button[type=submit]")
    expect(page.locator("#schedule-list li .next").first).to_have_text(NEXT_SUNSET)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    box = page.get_by_role("switch", name="Schedule 1 enabled").bounding_box()
    assert box is not None and box["height"] >= 24
    tab.shot(shots, "schedules-phone-dark")
    assert tab.errors == []
