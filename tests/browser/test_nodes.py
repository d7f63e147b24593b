"""The Nodes view: a node heard on the mesh appears with its things and goes offline."""

from __future__ import annotations

from .conftest import expect


def test_a_silent_node_goes_offline(open_page, plug):
    tab = open_page().open("nodes")
    page = tab.page
    own = page.locator("#node-list li[data-node='4242']")
    expect(own).to_contain_text("this plug")
    expect(own).to_contain_text("Wats")

    plug.send_udp(b"777:Kitchen&5:18.00&6:45.50")
    kitchen = page.locator("#node-list li[data-node='777']")
    expect(kitchen).to_contain_text("Kitchen")
    expect(kitchen.locator(".badge")).to_have_text("online")
    expect(kitchen).to_contain_text("thing 5")
    expect(kitchen).to_contain_text("45.5")
    expect(kitchen).to_contain_text("127.0.0.1")
    # Three intervals of 0.5 s unheard: offline, pushed by the daemon.
    expect(kitchen.locator(".badge")).to_have_text("offline")
    expect(kitchen).to_have_class("card node offline")
    assert tab.errors == []
