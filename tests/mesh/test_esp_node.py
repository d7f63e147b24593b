"""The ESP8266-format node of the mesh tests against the wire contract and plugd's decoder."""

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from mesh.esp_node import clock_text, datagram, heard, subnet_broadcast
from plugd.core.wire import decode
from tests.support import free_port, wait_for

HERE = Path(__file__).parent


def test_its_datagram_is_the_firmware_format_and_plugd_reads_it():
    data = datagram(2001, "esp living", -3.5, 45.0, datetime(2026, 11, 4, 7, 5, 9))
    assert data == b"2001:esp living&1:-3.50&2:45.00&3:7:05:09 - 4.11.2026"
    packet = decode(data)
    assert (packet.node_id, packet.node_name, packet.rejected) == (2001, "esp living", 0)
    assert [(f.thing_id, f.value, f.text) for f in packet.fields] == [
        (1, -3.5, "-3.50"), (2, 45.0, "45.00"), (3, 7.0, "7:05:09 - 4.11.2026")]


def test_the_clock_pads_minutes_and_seconds_only():
    assert clock_text(datetime(2026, 11, 24, 13, 5, 9)) == "13:05:09 - 24.11.2026"
    assert clock_text(datetime(2026, 1, 2, 0, 0, 0)) == "0:00:00 - 2.1.2026"


def test_it_broadcasts_to_its_address_with_the_last_octet_255():
    assert subnet_broadcast("10.77.0.21") == "10.77.0.255"


def test_it_reads_the_protocol_example_and_tolerates_stale_bytes():
    example = b"10223344:SmartPlugEsp&1:1.00&2:1523.75&3:412.30&4:13:05:09 - 24.11.2026"
    expected = (10223344, "SmartPlugEsp",
                {1: "1.00", 2: "1523.75", 3: "412.30", 4: "13:05:09 - 24.11.2026"})
    assert heard(example) == expected
    assert heard(example + b"\0stale&9:9.00") == expected
    assert heard(b"no id here") is None and heard(b"x:name&1:1.00") is None


def test_it_sends_the_temperature_in_its_file_and_lists_who_it_hears(tmp_path):
    """On loopback: the node sends to 127.0.0.255 (the last octet of 127.0.0.1 set to 255)."""
    port = free_port()
    temperature = tmp_path / "t"
    temperature.write_text("18.5\n")
    nodes = tmp_path / "nodes.json"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.255", port))
        listener.settimeout(30)
        node = subprocess.Popen([sys.executable, str(HERE / "esp_node.py"), "--id", "2001",
                                 "--name", "esp", "--ip", "127.0.0.1", "--port", str(port),
                                 "--interval", "0.2", "--temperature-file", str(temperature),
                                 "--nodes-file", str(nodes)])
        try:
            assert decode(listener.recv(512)).fields[0].value == 18.5
            temperature.write_text("23.25\n")
            wait_for(lambda: decode(listener.recv(512)).fields[0].value == 23.25, "the new temperature")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.sendto(b"1002:plug-b&1:1.00", ("127.0.0.1", port))
            listed = wait_for(lambda: nodes.exists() and json.loads(nodes.read_text()), "the nodes file")
            assert listed == {"1002": {"name": "plug-b", "address": "127.0.0.1", "things": {"1": "1.00"}}}
        finally:
            os.kill(node.pid, signal.SIGTERM)
            assert node.wait(timeout=30) == 0
