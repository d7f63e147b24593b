import ifaddr

from plugd.service import netif


def fake_sys(tmp_path, interfaces):
    for name, (flags, mac) in interfaces.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(hex(flags) + "\n")
        (tmp_path / name / "address").write_text(mac + "\n")
    return tmp_path


def test_node_id_is_the_lower_24_bits_of_a_mac(tmp_path, monkeypatch):
    monkeypatch.setattr(netif, "_default_route_interface", lambda: "wlan0")
    sys_net = fake_sys(tmp_path, {"lo": (0x9, "00:00:00:00:00:00"),
                                  "eth0": (0x1003, "b8:27:eb:11:22:33"),
                                  "wlan0": (0x1003, "b8:27:eb:9a:bc:de")})
    assert netif.derive_node_id(sys_net) == 0x9ABCDE  # the default route's interface first


def test_node_id_without_any_mac_comes_from_the_machine_id(tmp_path):
    (tmp_path / "net").mkdir()
    sys_net = fake_sys(tmp_path / "net", {"lo": (0x9, "00:00:00:00:00:00")})
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef\n")
    first = netif.derive_node_id(sys_net, machine_id)
    assert first == netif.derive_node_id(sys_net, machine_id)
    assert 0 < first < 2**24


def test_broadcast_addresses_are_directed_for_up_broadcast_interfaces_only(tmp_path, monkeypatch):
    sys_net = fake_sys(tmp_path, {"lo": (0x9, "00:00:00:00:00:00"), "eth0": (0x1003, "02:00:00:00:00:01"),
                                  "wlan0": (0x1002, "02:00:00:00:00:02"),  # down
                                  "wg0": (0x91, "00:00:00:00:00:00")})  # point-to-point, no broadcast
    adapters = [ifaddr.Adapter("lo", "lo", [ifaddr.IP("127.0.0.1", 8, "lo")]),
                ifaddr.Adapter("eth0", "eth0", [ifaddr.IP("192.0.2.20", 24, "eth0"),
                                                ifaddr.IP("198.51.100.7", 22, "eth0"),
                                                ifaddr.IP(("fe80::1", 0, 2), 64, "eth0")]),
                ifaddr.Adapter("wlan0", "wlan0", [ifaddr.IP("203.0.113.5", 24, "wlan0")]),
                ifaddr.Adapter("wg0", "wg0", [ifaddr.IP("10.9.0.1", 24, "wg0")])]
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: adapters)
    assert netif.broadcast_addresses(sys_net) == ["192.0.2.255", "198.51.103.255"]
