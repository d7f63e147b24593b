"""Settings: saved or refused by field, the password changed, the configuration exported and
imported (a bad file refused whole)."""

from __future__ import annotations

import json

from tests.broker import Broker
from tests.support import wait_for

from .conftest import expect


def test_settings_are_saved_and_a_bad_one_is_named(open_page, plug):
    tab = open_page().open("settings").login()
    page = tab.page
    tab.view("settings")
    expect(page.locator("#s-name")).to_have_value("TestPlug")
    page.fill("#s-interval", "0")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("[data-field='mesh.interval'] .field-error")).to_contain_text("between 0.1 and 3600")

    page.fill("#s-name", "Lounge")
    page.fill("#s-interval", "0.5")
    page.select_option("#s-mode", "clock")
    page.fill("#s-brightness", "3")
    page.click("#settings-form button[type=submit]")
    expect(page.locator(".toast", has_text="Settings saved.")).to_be_visible()
    expect(page.locator("#node-name")).to_have_text("Lounge")  # every message names the node
    assert plug.ask("status")["nodeName"] == "Lounge"

    page.select_option("#c-what", "power")
    page.click("#calibrate-form button[type=submit]")
    expect(page.locator("[data-field=value] .field-error")).to_contain_text("Type the value your meter shows")
    page.select_option("#c-what", "reset")
    expect(page.locator("#c-value")).to_be_hidden()  # reset and zero need no value
    wait_for(lambda: plug.ask("status")["meter"]["samplesPerSecond"], "the meter's first reading")
    page.click("#calibrate-form button[type=submit]")
    expect(page.locator(".toast", has_text="Calibrated.")).to_be_visible()
    expect(page.locator("#calibration")).to_contain_text("current gain 1.0000")

    page.fill("#sim-watts", "a lot")
    page.click("#simulate-form button[type=submit]")
    expect(page.locator("[data-field=watts] .field-error")).to_contain_text("number of watts")
    page.fill("#sim-watts", "20000")
    page.click("#simulate-form button[type=submit]")
    expect(page.locator("[data-field=watts] .field-error")).to_contain_text("between 0 and 10000")
    assert tab.errors == []


def test_the_password_is_changed_and_the_new_one_logs_in(open_page, plug):
    tab = open_page().open().login()
    page = tab.page
    expect(page.locator("#password-hint")).to_be_visible()
    page.fill("#p-old", plug.password)
    page.fill("#p-new", "short")
    page.fill("#p-repeat", "short")
    page.click("#password-form button[type=submit]")
    expect(page.locator("[data-field=new] .field-error")).to_contain_text("at least")

    page.fill("#p-old", plug.password)
    page.fill("#p-new", "a kettle and a heater")
    page.fill("#p-repeat", "a kettle and a heater")
    page.click("#password-form button[type=submit]")
    expect(page.locator(".toast", has_text="Password changed.")).to_be_visible()
    expect(page.locator("#password-hint")).to_be_hidden()

    page.click("#account")  # log out
    expect(page.locator("#account")).to_have_text("Log in")
    plug.password = "a kettle and a heater"
    tab.login()
    expect(page.locator("#password-hint")).to_be_hidden()
    assert tab.errors == []


def test_the_configuration_is_exported_and_a_bad_import_changes_nothing(open_page, plug, tmp_path):
    tab = open_page().open("settings").login()
    page = tab.page
    tab.view("settings")
    with page.expect_download() as download:
        page.click("#config-form [data-action=export]")
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.name.startswith("plugd-TestPlug-") and exported.suffix == ".json"
    config = json.loads(exported.read_text())
    assert config["node"]["id"] == 4242 and config["recipes"] == []

    not_json = tmp_path / "broken.json"
    not_json.write_text("{not json")
    page.set_input_files("#import-file", str(not_json))
    expect(page.locator("#config-form .form-error")).to_contain_text("broken.json is not a JSON file")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**config, "recipes": [{"name": "x"}],
                               "settings": {"node.name": "Renamed"}}))
    page.set_input_files("#import-file", str(bad))
    expect(page.locator("#config-form .form-error")).to_contain_text(
        "Nothing was imported: config.recipes[0]")
    assert plug.ask("status")["nodeName"] == "TestPlug"

    page.set_input_files("#import-file", str(exported))
    expect(page.locator(".toast", has_text="Configuration imported")).to_be_visible()
    assert tab.errors == []


def test_mqtt_is_set_up_on_the_page_and_its_state_shown(open_page, plug, tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        tab = open_page().open("settings").login()
        page = tab.page
        tab.view("settings")
        expect(page.locator("#mqtt-state")).to_contain_text("Off")
        page.fill("#m-host", "127.0.0.1")
        page.fill("#m-port", "70000")
        page.click("#mqtt-form button[type=submit]")
        expect(page.locator("[data-field='mqtt.port'] .field-error")).to_contain_text("65535")
        assert plug.ask("status")["mqtt"]["enabled"] is False  # refused: nothing changed
        page.fill("#m-port", str(broker.port))
        page.fill("#m-password", "not-needed")
        page.click("#mqtt-form button[type=submit]")
        expect(page.locator("[data-field='mqtt.password'] .field-error")).to_contain_text("username")
        page.fill("#m-username", "plug")  # the broker lets anyone in: any name will do
        page.click("#mqtt-form button[type=submit]")
        expect(page.locator("#mqtt-state")).to_contain_text(f"Connected to 127.0.0.1:{broker.port}")
        expect(page.locator("#m-password")).to_have_attribute("placeholder", "set (type to change)")
        with plug.session() as client:  # a secret is never read back, nor exported
            assert "not-needed" not in json.dumps(client.ask({"command": "export_config"}))
            assert "not-needed" not in json.dumps(client.ask({"command": "request_settings"}))
        page.fill("#m-host", "")
        page.click("#mqtt-form button[type=submit]")
        expect(page.locator("#mqtt-state")).to_contain_text("Off")
        assert tab.errors == []
    finally:
        broker.stop()
