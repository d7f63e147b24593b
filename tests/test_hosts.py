"""The names the plug answers to, the pages it trusts and the paths it serves: pure rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.doors.hosts import MAX_PATH, Names, path_problem, split_host

LOCAL = {"192.168.1.20", "fe80::1", "2001:db8::20"}
NAMES = Names(["localhost", "kitchen-plug.local", "Plug.Home.Example."], LOCAL.__contains__,
              ["http://espplug.local"])


@pytest.mark.parametrize(("host", "parts"), [
    ("plug.local", ("plug.local", None)), ("PLUG.local.:8080", ("plug.local", 8080)),
    ("[::1]:80", ("::1", 80)), ("[fe80::1]", ("fe80::1", None)), ("192.168.1.20:81", ("192.168.1.20", 81)),
    ("", None), ("::1", None), ("[::1", None), ("[::1]x", None), ("a:b", None), ("a:0", None),
    ("a:65536", None), ("a b", None), ("a/b", None), ("user@plug", None), ("a\x00", None), (":80", None),
])
def test_a_host_splits_into_a_name_and_a_port_or_is_refused(host, parts):
    assert split_host(host) == parts


@pytest.mark.parametrize("host", [
    "localhost", "localhost:8080", "127.0.0.1", "127.0.0.2:80", "[::1]:8080", "192.168.1.20",
    "[fe80::1]", "[2001:db8::20]:80", "Kitchen-Plug.local", "kitchen-plug.local.", "plug.home.example",
])
def test_the_plug_answers_to_its_own_names_and_addresses(host):
    assert NAMES.host_problem(host) is None


@pytest.mark.parametrize("host", [
    None, "", "evil.example", "evil.example:80", "kitchen-plug.local.evil.example", "192.168.1.21",
    "[2001:db8::21]", "localhost.evil.example", "0.0.0.0", "espplug.local",
])
def test_any_other_host_is_refused_with_a_reason(host):
    problem = NAMES.host_problem(host)
    assert problem and (host is None or "host" in problem or "answer" in problem)


@pytest.mark.parametrize(("origin", "scheme", "port"), [
    ("http://kitchen-plug.local", "http", 80), ("http://kitchen-plug.local:8080", "http", 8080),
    ("http://192.168.1.20", "http", 80), ("http://[fe80::1]:8080", "http", 8080),
    ("http://localhost:8080/", "http", 8080), ("https://plug.home.example", "https", 443),
    ("http://espplug.local", "http", 80), ("HTTP://ESPPLUG.LOCAL/", "http", 8080),
])
def test_pages_of_the_plug_or_trusted_origins_may_open_the_websocket(origin, scheme, port):
    assert NAMES.origin_problem(origin, scheme, port) is None


@pytest.mark.parametrize(("origin", "scheme", "port"), [
    ("http://evil.example", "http", 80),
    ("http://kitchen-plug.local:8000", "http", 8080),     # another service of the same machine
    ("https://kitchen-plug.local", "http", 80),           # the scheme counts
    ("http://kitchen-plug.local", "https", 443),
    ("file://kitchen-plug.local", "http", 80), ("null", "http", 80), ("", "http", 80),
    ("http://kitchen-plug.local/page", "http", 80), ("http://192.168.1.21", "http", 80),
    ("http://espplug.local.evil.example", "http", 80),
])
def test_other_pages_may_not(origin, scheme, port):
    assert "is not this plug" in NAMES.origin_problem(origin, scheme, port)


@given(st.text(max_size=40))
def test_no_host_text_is_taken_for_an_address_of_another_machine(text):
    problem = NAMES.host_problem(text)
    parts = split_host(text)
    if problem is None:
        assert parts is not None and NAMES.own(parts[0])


@pytest.mark.parametrize(("raw", "why"), [
    (b"/%00", "control"), (b"/a\x00", "control"), (b"/%0a", "control"), (b"/%ff", "UTF-8"),
    (b"/\xff", "UTF-8"), (b"/" + b"a" * MAX_PATH, "longer"),
])
def test_bad_paths_are_refused_by_name(raw, why):
    assert why in path_problem(raw)


@pytest.mark.parametrize("raw", [b"/", b"/js/app.js", b"/%C3%A9t%C3%A9", "/été".encode(),
                                 b"/session?ticket=abc-_123", b"/" + b"a" * (MAX_PATH - 1)])
def test_sane_paths_pass(raw):
    assert path_problem(raw) is None
