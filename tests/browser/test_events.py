"""The Events view: causes in words, repeats as one line with a count."""

from .conftest import expect

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
    expect(first).to_contain_text("relay on")
    expect(first.locator(".cause")).to_have_text("by recipe 1: Kitchen thing 5 below 19")
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
