"""The Events view: causes in words, repeats as one line with a count, times as the reader
writes them."""

import re

import pytest

from .conftest import TIMEOUT_MS, Page, expect

RECIPE = {"name": "heat", "sourceNodeId": 777, "sourceThingId": 5, "relation": 3,
          "targetValue": 19, "localThingId": 1, "localValue": 1}


def test_events_say_why_in_words_and_repeats_are_one_line(open_page, plug):
    with plug.session(login=False) as ws:
        for _ in range(3):
            assert not ws.ask({"command": "login", "password": "not it"})["success"]
        assert ws.ask({"command": "login", "token": plug.token})["success"]
        assert ws.ask({"command": "save_recipe", "recipe": RECIPE})["success"]
    tab = open_page().open().login()
    page = tab.page
    tab.view("events")
    failed = page.locator("#event-list li", has_text="failed login")
    expect(failed).to_have_count(1)
    expect(failed.locator(".repeats")).to_contain_text("×3")
    expect(failed.locator(".cause")).to_have_text("by a person at 127.0.0.1")
    plug.send_udp(b"777:Kitchen&5:18.00")
    first = page.locator("#event-list li").first
    sentence = "If Kitchen value 5 is below 19 then switch on"
    expect(first.locator(".message")).to_have_text(f"Recipe “{sentence}” switched the plug on")
    expect(first.locator(".cause")).to_have_text("by recipe 1")  # its sentence is said once
    assert tab.errors == []


def test_a_pushed_repeat_updates_its_line_on_the_open_page(open_page, plug):
    tab = open_page().open()
    page = tab.page
    tab.view("events")
    expect(page.locator("#event-list li").first).to_contain_text("relay off at start")
    with plug.session(login=False) as ws:
        for _ in range(3):
            assert not ws.ask({"command": "login", "password": "not it"})["success"]
    failed = page.locator("#event-list li", has_text="failed login")
    expect(failed.locator(".repeats")).to_contain_text("×3")
    expect(failed).to_have_count(1)
    expect(page.locator("#event-list li").first).to_contain_text("failed login")
    assert tab.errors == []


# The reader's locale decides how an absolute time reads (Intl.DateTimeFormat's short date and
# medium time): 6.12.26 or 06.12.26, 14:03:05 in German; 12/6/26, 2:03:05 PM in American English.
LOCALES = {"de-DE": (r"^\d{1,2}\.\d{1,2}\.\d{2}, \d{2}:\d{2}:\d{2}$", r"^\d{2}:\d{2}:\d{2}$"),
           "en-US": (r"^\d{1,2}/\d{1,2}/\d{2}, \d{1,2}:\d{2}:\d{2}\s?[AP]M$",
                     r"^\d{2}:\d{2}:\d{2}\s?[AP]M$")}


@pytest.mark.parametrize("locale", LOCALES)
def test_times_are_recent_in_words_else_in_the_readers_locale(browser, plug, locale):
    full, clock = LOCALES[locale]
    context = browser.new_context(locale=locale)
    try:
        context.set_default_timeout(TIMEOUT_MS)
        tab = Page(context.new_page(), plug).open()
        page = tab.page
        expect(page.locator("#last-update")).to_have_text(re.compile(clock))
        tab.view("events")
        time = page.locator("#event-list li time").first
        expect(time).to_have_text(re.compile(r"^\d+ s ago$"))
        expect(time).to_have_attribute("title", re.compile(full))
        assert tab.errors == []
    finally:
        context.close()
