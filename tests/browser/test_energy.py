"""The Energy view and the power chart's ranges: bars with their total and cost for a day, a
week, a month and a year, the CSV link, the chart over an hour and two days; on a phone too."""

from __future__ import annotations

import re

import pytest

from tests.support import wait_for

from .conftest import expect

PRICED = {"energy": {"price_per_kwh": 0.3, "currency": "EUR"}}


def energy_today(plug) -> float:
    return plug.ask("status")["energyToday"] or 0.0


def draw_some_energy(plug) -> None:
    assert plug.ctl("on").returncode == 0
    wait_for(lambda: energy_today(plug) > 0.2, "the simulated load to draw some energy")


@pytest.mark.plugd_config(PRICED)
def test_the_energy_view_draws_bars_with_totals_and_costs(open_page, plug):
    draw_some_energy(plug)
    tab = open_page().open("energy")
    page = tab.page
    chart = page.locator("#energy-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-drawn", re.compile(r"^2[345]$"))  # a day's hours
    expect(page.locator("#energy-total")).to_have_text(re.compile(r"^\d+(\.\d+)? k?Wh$"))
    expect(page.locator("#energy-total")).not_to_have_text("0.0 Wh")
    expect(page.locator("#energy-cost")).to_have_text(re.compile(r"^\d+\.\d\d EUR$"))
    expect(page.locator("#energy-csv")).to_have_attribute("href", re.compile(r"period=hour&from=\d+&to=\d+"))
    for span, bars in (("week", r"^7$"), ("month", r"^(28|29|30|31)$"), ("year", r"^12$")):
        button = page.locator(f"#energy-spans button[data-span={span}]")
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(chart).to_have_attribute("data-drawn", re.compile(bars))
        expect(page.locator("#energy-total")).not_to_have_text("0.0 Wh")  # today is in every span
    page.click("#energy-prev")  # last year: nothing measured then
    expect(page.locator("#energy-total")).to_have_text("0.0 Wh")
    expect(page.locator("#energy-next")).to_be_enabled()
    page.click("#energy-next")
    expect(page.locator("#energy-total")).not_to_have_text("0.0 Wh")
    expect(page.locator("#energy-next")).to_be_disabled()
    assert tab.errors == []


def test_the_power_chart_shows_an_hour_a_day_and_two_days(open_page, plug):
    draw_some_energy(plug)
    tab = open_page().open()
    page = tab.page
    chart = page.locator("#chart")
    for label, points, title in (("1 h", "60", "last hour"), ("1 day", "1440", "last day"),
                                 ("2 days", "2880", "last two days")):
        page.click(f"#chart-ranges button:text-is('{label}')")
        expect(page.locator("#chart-title")).to_have_text(f"Power, {title}")
        expect(chart).to_have_attribute("data-points", points)
    page.click("#chart-ranges button:text-is('10 min')")
    expect(page.locator("#chart-title")).to_have_text("Power, last 10 minutes")
    page.wait_for_function("Number(document.querySelector('#chart').dataset.points) <= 600")
    assert tab.errors == []


@pytest.mark.plugd_config(PRICED)
def test_the_energy_view_works_on_a_phone(open_page, plug, shots):
    draw_some_energy(plug)
    tab = open_page(width=360, height=780, scheme="dark").open("energy")
    page = tab.page
    expect(page.locator("#energy-chart canvas")).to_have_count(1)
    for span in ("day", "week", "month", "year"):
        page.click(f"#energy-spans button[data-span={span}]")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{span}: {width} px wide on a 360 px screen"
    box = page.locator("#energy-prev").bounding_box()
    assert box is not None and box["height"] >= 40  # a finger's target
    tab.shot(shots, "energy-phone-dark")
    assert tab.errors == []
