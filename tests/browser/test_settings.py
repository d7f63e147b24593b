"""Settings: saved or refused by field, the password changed, the configuration exported and
imported (a bad file refused whole)."""

from __future__ import annotations

import json

import pytest

from tests.broker import Broker
from tests.support import PlugdProcess, wait_for

from .conftest import CONFIG, Page, expect


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


def settings_of(plug):
    """The daemon's settings and secrets now, as request_settings answers."""
    with plug.session() as client:
        return client.ask({"command": "request_settings"})


def test_limits_and_the_power_on_state_are_set_and_a_bad_one_is_named(open_page, plug):
    tab = open_page().open("settings").login()
    page = tab.page
    tab.view("settings")
    expect(page.locator("#r-power-on")).to_have_value("last")
    page.fill("#r-max-power", "a lot")
    page.click("#relay-settings-form button[type=submit]")
    expect(page.locator("[data-field='protection.max_power'] .field-error")).to_contain_text(
        "Type a number, for example 3000.")
    page.fill("#r-max-power", "-5")
    page.click("#relay-settings-form button[type=submit]")
    expect(page.locator("[data-field='protection.max_power'] .field-error")).to_contain_text(
        "must be 0 (off) or a power in W")
    assert settings_of(plug)["settings"]["protection.max_power"] == 0  # refused: nothing changed

    page.fill("#r-max-power", "2500")
    page.fill("#r-max-current", "11,5")  # a decimal comma is a number too
    page.fill("#r-retry", "30")
    page.select_option("#r-power-on", "schedule")
    page.select_option("#r-stop", "keep")
    page.click("#relay-settings-form button[type=submit]")
    expect(page.locator(".toast", has_text="Switching and protection saved.")).to_be_visible()
    now = settings_of(plug)["settings"]
    assert (now["protection.max_power"], now["protection.max_current"], now["protection.retry_after"],
            now["relay.power_on_state"], now["relay.stop_state"]) == (2500, 11.5, 30, "schedule", "keep")
    page.reload()
    expect(page.locator("#r-max-current")).to_have_value("11.5")
    expect(page.locator("#r-power-on")).to_have_value("schedule")
    assert tab.errors == []


def test_the_mesh_key_says_set_or_not_and_is_never_shown(open_page, plug):
    tab = open_page().open("settings").login()
    page = tab.page
    tab.view("settings")
    state = page.locator("#meshkey-state")
    expect(state).to_contain_text("Not set")
    expect(page.locator("[data-action=clear-key]")).to_be_hidden()
    page.fill("#k-key", "too short")
    page.click("#meshkey-form button[type=submit]")
    expect(page.locator("[data-field='mesh.mesh_key'] .field-error")).to_contain_text(
        "at least 16 characters")

    page.click("[data-action=make-key]")
    key = page.locator("#k-key").input_value()
    assert len(key) == 32 and page.locator("#k-key").get_attribute("type") == "text"
    page.click("#meshkey-form button[type=submit]")
    expect(state).to_contain_text("Set: this plug signs")
    expect(page.locator("#k-key")).to_have_value("")
    expect(page.locator("#k-key")).to_have_attribute("type", "password")
    assert plug.ask("status")["signed"] is True
    answer = settings_of(plug)
    assert answer["secrets"]["mesh.mesh_key"] is True and key not in json.dumps(answer)

    clear = page.locator("[data-action=clear-key]")
    clear.click()
    expect(clear).to_have_text("Really clear?")
    clear.click()
    expect(state).to_contain_text("Not set")
    assert plug.ask("status")["signed"] is False
    assert tab.errors == []


@pytest.mark.plugd_config({"page": {"fixed": ["relay.power_on_state", "mesh.mesh_key"]},
                           "relay": {"power_on_state": "on"}})
def test_a_setting_the_file_fixes_is_read_only_and_the_rest_saves(open_page, plug):
    tab = open_page().open("settings").login()
    page = tab.page
    tab.view("settings")
    power_on = page.locator("#r-power-on")
    expect(power_on).to_have_value("on")
    expect(power_on).to_be_disabled()
    note = page.locator("[data-field='relay.power_on_state'] .fixed-note")
    expect(note).to_have_text(f"Set in {plug.config_file}: change it there.")
    expect(page.locator("#r-stop")).to_be_enabled()
    expect(page.locator("#k-key")).to_be_disabled()
    expect(page.locator("#meshkey-form button[type=submit]")).to_be_hidden()
    page.select_option("#r-stop", "keep")
    page.click("#relay-settings-form button[type=submit]")
    expect(page.locator(".toast", has_text="Switching and protection saved.")).to_be_visible()
    now = settings_of(plug)
    assert now["settings"]["relay.stop_state"] == "keep"
    assert now["settings"]["relay.power_on_state"] == "on"
    assert now["fixed"] == {"relay.power_on_state": str(plug.config_file),
                            "mesh.mesh_key": str(plug.config_file)}
    assert tab.errors == []


def test_the_name_the_hostname_gives_is_shown_and_changed(browser, tmp_path):
    plug = PlugdProcess(tmp_path, name=None, config=CONFIG)  # no name: the hostname's
    context = browser.new_context()
    try:
        tab = Page(context.new_page(), plug).open("settings").login()
        page = tab.page
        tab.view("settings")
        name = plug.ask("status")["nodeName"]
        assert name
        expect(page.locator("#s-name")).to_have_value(name)
        page.fill("#s-name", "Hall Lamp")
        page.click("#settings-form button[type=submit]")
        expect(page.locator(".toast", has_text="Settings saved.")).to_be_visible()
        expect(page.locator("#node-name")).to_have_text("Hall Lamp")
        page.reload()
        expect(page.locator("#s-name")).to_have_value("Hall Lamp")
        assert tab.errors == []
    finally:
        context.close()
        plug.stop()
