"""The Nodes view: a node heard on the mesh appears with its things and goes offline; its values
show what they mean, assumed until a person names them."""

from __future__ import annotations

from .conftest import TIMEOUT_MS, Page, expect


def test_a_silent_node_goes_offline(open_page, plug):
    tab = open_page().open("nodes")
    page = tab.page
    own = page.locator("#node-list li[data-node='4242']")
    expect(own).to_contain_text("this plug")
    expect(own).to_contain_text("Power")  # its own values by their names for people
    expect(own).not_to_contain_text("Wats")  # the wire's name, which ESP pages read

    plug.send_udp(b"777:Kitchen&5:18.00&6:45.50")
    kitchen = page.locator("#node-list li[data-node='777']")
    expect(kitchen).to_contain_text("Kitchen")
    expect(kitchen.locator(".badge")).to_have_text("online")
    expect(kitchen).to_contain_text("Unlabelled value (id 5)")
    expect(kitchen).to_contain_text("45.5")
    expect(kitchen).to_contain_text("127.0.0.1")
    # Three intervals of 0.5 s unheard: offline, pushed by the daemon.
    expect(kitchen.locator(".badge")).to_have_text("offline")
    expect(kitchen).to_have_class("card node offline")
    assert tab.errors == []


def test_a_peers_value_shows_its_assumed_meaning_until_a_person_names_it(open_page, plug):
    tab = open_page().open("nodes").login()
    tab.view("nodes")
    page = tab.page
    plug.send_udp(b"777:Fridge&2:80.00&5:21.50")
    fridge = page.locator("#node-list li[data-node='777']")
    power = fridge.locator("tr", has_text="Power (assumed)")
    expect(power).to_contain_text("80 W")
    unnamed = fridge.locator("tr", has_text="Unlabelled value (id 5)")
    expect(unnamed).to_contain_text("21.5")

    unnamed.locator("button", has_text="Name it").click()
    page.fill("#l-name", "Room")
    page.fill("#l-unit", "°C")
    page.select_option("#l-kind", "temperature")
    page.click("#label-form button[type=submit]")
    expect(page.locator("#label-form")).to_be_hidden()
    expect(fridge.locator("tr", has_text="Room")).to_contain_text("21.5 °C")
    expect(fridge).not_to_contain_text("Unlabelled value (id 5)")
    assert plug.ask("nodes")["labels"] == [
        {"nodeId": 777, "thingId": 5, "name": "Room", "unit": "°C", "kind": "temperature"}]

    # A refused label is explained at its field and changes nothing.
    power.locator("button", has_text="Label").click()
    page.fill("#l-name", "Hot & cold")
    page.click("#label-form button[type=submit]")
    error = page.locator("#label-form [data-field='label.name'] .field-error")
    expect(error).to_contain_text("must not contain '&'")
    assert len(plug.ask("nodes")["labels"]) == 1
    assert tab.errors == []


def test_an_esp_nodes_clock_reads_in_the_readers_locale(browser, plug):
    # The firmware sends its clock as "H:MM:SS - D.M.YYYY"; a German reader sees 24.11.26, 13:05:09.
    context = browser.new_context(locale="de-DE")
    try:
        context.set_default_timeout(TIMEOUT_MS)
        tab = Page(context.new_page(), plug).open("nodes")
        plug.send_udp(b"10223344:SmartPlugEsp&1:1.00&4:13:05:09 - 24.11.2026")
        esp = tab.page.locator("#node-list li[data-node='10223344']")
        expect(esp).to_contain_text("24.11.26, 13:05:09")
        expect(esp).not_to_contain_text(" - 24.11.2026")
        assert tab.errors == []
    finally:
        context.close()
