import contextlib
import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.cli import main
from plugd.errors import ConfigError
from plugd.service import config

ETC = Path(__file__).resolve().parent.parent / "etc" / "plugd.toml"


def test_defaults_are_those_of_an_installed_plug():
    c = config.parse("")
    assert (c.mesh.udp_port, c.mesh.interval, c.mesh.offline_after, c.mesh.max_nodes) == (2390, 5.0, 3, 256)
    assert (c.http.port, c.state.dir, c.relay.power_on_state) == (80, "/var/lib/plugd", "last")
    assert c.mesh.broadcast == [] and not c.simulated


def test_simulate_defaults_to_loopback_and_port_8080():
    c = config.parse("", simulate=True)
    assert c.mesh.broadcast == ["127.255.255.255"] and c.http.port == 8080 and c.simulated
    assert "plugd-sim" in c.state.dir


def test_the_file_overrides_simulate_defaults_and_the_command_line_overrides_the_file():
    c = config.parse('[http]\nport = 9000\n[mesh]\nudp_port = 3000\n', {"mesh.udp_port": 4000},
                     simulate=True)
    assert (c.http.port, c.mesh.udp_port) == (9000, 4000)


def test_the_shipped_file_is_valid_and_states_every_default():
    text = ETC.read_text()
    assert config.parse(text) == config.parse("")
    raw = tomllib.loads(re.sub(r"(?m)^#(?=\w+ = )", "", text))
    documented = {f"{section}.{key}" for section, table in raw.items() for key in table}
    defaults = config.parse("")
    every_key = {f"{section.name}.{key}" for section in dataclasses.fields(defaults)
                 if not section.metadata.get("internal")
                 for key in vars(getattr(defaults, section.name))}
    assert documented == every_key


@pytest.mark.parametrize("text, message", [
    ("[mesh]\nudp_prot = 1", "mesh.udp_prot: unknown key"),
    ("[meh]\nudp_port = 1", "meh: unknown key"),
    ("[mesh]\nudp_port = '2390'", "mesh.udp_port: expected an integer, got a string"),
    ("[mesh]\nudp_port = 70000", "mesh.udp_port: must be a port number"),
    ("[mesh]\ninterval = true", "mesh.interval: expected a number, got a boolean"),
    ("[mesh]\nbroadcast = '127.255.255.255'", "mesh.broadcast: expected a list of strings"),
    ("[mesh]\nbroadcast = [1]", r"mesh.broadcast\[0\]: expected a string"),
    ("[mesh]\nbroadcast = ['localhost']", "mesh.broadcast: 'localhost' is not an IPv4 address"),
    ("[relay]\npower_on_state = 'maybe'", "relay.power_on_state: must be one of"),
    ("[relay]\nactive_high = 1", "relay.active_high: expected true or false"),
    ("[node]\nname = 'a&b'", "node.name: must not contain '&'"),
    ("[node]\nid = 2147483648", "node.id: must be 0"),
    ("mesh = 3", "mesh: expected a table"),
    ("[mesh", "not valid TOML"),
])
def test_bad_configuration_is_refused_naming_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        config.parse(text)


def test_an_integer_is_a_fine_float():
    assert config.parse("[mesh]\ninterval = 2").mesh.interval == 2.0


@given(st.dictionaries(st.sampled_from(["node", "mesh", "http", "relay", "x"]),
                       st.dictionaries(st.sampled_from(["id", "udp_port", "name", "pin", "interval", "y"]),
                                       st.one_of(st.integers(), st.text(max_size=5), st.booleans(),
                                                 st.floats(), st.lists(st.integers(), max_size=2)),
                                       max_size=3), max_size=3))
def test_any_table_gives_a_config_or_a_config_error(raw):
    with contextlib.suppress(ConfigError):
        config._build(config.Config, raw, "")


def test_check_config_reports_ok_and_errors(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text("[mesh]\nudp_port = 2391\n")
    assert main(["--config", str(good), "--check-config"]) == 0
    assert "configuration OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[mesh]\nudp_port = 'x'\n")
    assert main(["--config", str(bad), "--check-config"]) == 2
    assert "mesh.udp_port: expected an integer" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "--check-config"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_command_line_options_are_checked_like_the_file(capsys):
    assert main(["--simulate", "--http-port", "99999", "--check-config"]) == 2
    assert "http.port: must be a port number" in capsys.readouterr().err


def test_python_dash_m_plugd_runs_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "plugd", "--simulate", "--check-config"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "configuration OK" in done.stdout


GOOD_KEY = "Kitchen-and-Hall-share-this-7"


def keyed_file(tmp_path, text, mode):
    path = tmp_path / "plugd.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_mesh_key_in_a_file_everyone_reads_is_refused_naming_the_fix(tmp_path):
    path = keyed_file(tmp_path, f'[mesh]\nmesh_key = "{GOOD_KEY}"\n', 0o644)
    with pytest.raises(ConfigError, match=r"mesh\.mesh_key: .*readable by everyone.*chmod o-r"):
        config.load(path, environ={})
    path.chmod(0o640)
    assert config.load(path, environ={}).mesh.mesh_key == GOOD_KEY


def test_the_mesh_key_comes_from_its_own_file_or_from_systemds_credential(tmp_path):
    key_file = tmp_path / "mesh-key"
    key_file.write_text(GOOD_KEY + "\n")
    key_file.chmod(0o600)
    path = keyed_file(tmp_path, f'[mesh]\nmesh_key_file = "{key_file}"\n', 0o644)
    assert config.load(path, environ={}).mesh.mesh_key == GOOD_KEY
    key_file.chmod(0o604)
    with pytest.raises(ConfigError, match=r"mesh\.mesh_key_file: .*readable by everyone"):
        config.load(path, environ={})
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mesh_key").write_text("Another-Strong-Key-for-the-mesh-42")
    loaded = config.load(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert loaded.mesh.mesh_key == "Another-Strong-Key-for-the-mesh-42"  # the credential wins


def test_a_weak_key_is_refused_wherever_it_comes_from(tmp_path):
    key_file = tmp_path / "mesh-key"
    key_file.write_text(" " * 16)
    key_file.chmod(0o600)
    path = keyed_file(tmp_path, f'[mesh]\nmesh_key_file = "{key_file}"\n', 0o644)
    with pytest.raises(ConfigError, match=r"mesh\.mesh_key: must not begin or end with white space"):
        config.load(path, environ={})
