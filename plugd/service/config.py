"""Configuration: a TOML file read into frozen dataclasses.

Unknown keys and wrong types are refused with a `ConfigError` that names the
key (`mesh.udp_port`) and the type expected, so a typo never starts a plug
that does something else than the user wrote.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from plugd.chips import ACS712_MODELS, ADS1115_DATA_RATES, ADS1115_FULL_SCALES, ADS1115_RANGES
from plugd.core.discovery import prefix_problem
from plugd.core.meshkey import key_problem
from plugd.core.model import MAX_NODE_ID, finite, name_problem
from plugd.doors.hosts import split_host
from plugd.errors import ConfigError, ValidationError

DEFAULT_PATH = Path("/etc/plugd/plugd.toml")


def _check(problem: typing.Callable[[Any], str | None]) -> dict[str, Any]:
    return {"check": problem}


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be a port number 0..65535, got {value}"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def _ipv4_list(value: list[str]) -> str | None:
    for item in value:
        try:
            ipaddress.IPv4Address(item)
        except ValueError:
            return f"{item!r} is not an IPv4 address"
    return None


def _one_of(*choices: str) -> typing.Callable[[str], str | None]:
    return lambda value: None if value in choices else (
        f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def _mesh_key(value: str) -> str | None:
    return key_problem(value)


def _node_ids(value: list[int]) -> str | None:
    for item in value:
        if not 0 < item <= MAX_NODE_ID:
            return f"{item} is not a node id 1..{MAX_NODE_ID}"
    return None


@dataclass(frozen=True)
class NodeConfig:
    """[node]: this node's id and name on the mesh (0 and "": derived)."""
    #: 0 derives the id from the MAC address, as the ESP8266 chip id.
    id: int = field(default=0, metadata=_check(
        lambda v: None if 0 <= v <= MAX_NODE_ID else f"must be 0 (derive) or 1..{MAX_NODE_ID}, got {v}"))
    #: "" uses the hostname.
    name: str = field(default="", metadata=_check(lambda v: v and name_problem(v)))


@dataclass(frozen=True)
class MeshConfig:
    """[mesh]: the UDP mesh, its timing, its bounds and its key."""
    udp_port: int = field(default=2390, metadata=_check(_port))
    bind: str = field(default="0.0.0.0", metadata=_check(lambda v: _ipv4_list([v])))
    #: Empty: the directed broadcast address of every up, non-loopback IPv4 interface.
    broadcast: list[str] = field(default_factory=list, metadata=_check(_ipv4_list))
    interval: float = field(default=5.0, metadata=_check(
        lambda v: None if 0.1 <= v <= 3600 else f"must be between 0.1 and 3600 seconds, got {v}"))
    offline_after: int = field(default=3, metadata=_check(
        lambda v: None if 1 <= v <= 100 else f"must be between 1 and 100 intervals, got {v}"))
    max_nodes: int = field(default=256, metadata=_check(
        lambda v: None if 1 <= v <= 100_000 else f"must be between 1 and 100000, got {v}"))
    max_changes_per_second: float = field(default=10.0, metadata=_check(_positive))
    #: Shared key: sign what we send, refuse what is not signed with it (see plugd.core.meshkey).
    mesh_key: str = field(default="", metadata=_check(_mesh_key))
    #: A file holding the mesh key instead (not readable by everyone); systemd's credential
    #: `mesh_key` (LoadCredential=) wins over both.
    mesh_key_file: str = ""
    #: With a mesh key: node ids whose unsigned datagrams are still accepted (ESP8266 nodes).
    trusted_esp_nodes: list[int] = field(default_factory=list, metadata=_check(_node_ids))


def _origins(value: list[str]) -> str | None:
    for origin in value:
        if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            return f"{origin!r} is not an origin like \"http://kitchen.local\""
    return None


def _server_names(value: list[str]) -> str | None:
    for name in value:
        if not name or split_host(name) != (name.lower().rstrip("."), None):
            return f"{name!r} is not a host name like \"plug.example.net\" (no scheme, no port)"
    return None


def _at_least(low: int) -> Callable[[int], str | None]:
    return lambda value: None if value >= low else f"must be at least {low}, got {value}"


#: The longest auto-off: a week.
MAX_AUTO_OFF = 7 * 86400


@dataclass(frozen=True)
class HttpConfig:
    """[http]: the page and the WebSocket API, and who may read and change."""
    port: int = field(default=80, metadata=_check(_port))
    bind: str = ""
    www_dir: str = ""
    #: Whether the page and scripts may read without logging in (changes always need a login).
    open_reading: bool = True
    #: Origins besides the plug's own whose pages may open the WebSocket (ESP8266 nodes' pages).
    trusted_origins: list[str] = field(default_factory=list, metadata=_check(_origins))
    #: Let changes through without a login, as the ESP8266 firmware does. Think twice.
    allow_unauthenticated_changes: bool = False
    #: Names the plug answers to besides its addresses, localhost and its .local names (a name
    #: in your own DNS, say). Any other Host gets 421: a page cannot rebind its name to the plug.
    server_names: list[str] = field(default_factory=list, metadata=_check(_server_names))
    #: Connections open at once, in total and per client (an address, an IPv6 /64).
    max_connections: int = field(default=512, metadata=_check(_at_least(8)))
    max_connections_per_client: int = field(default=32, metadata=_check(_at_least(2)))


@dataclass(frozen=True)
class StateConfig:
    """[state]: where the plug keeps what it must not forget."""
    dir: str = field(default="/var/lib/plugd", metadata=_check(lambda v: None if v else "must not be empty"))


@dataclass(frozen=True)
class RelayConfig:
    """[relay]: its pin, polarity and states at power-on and at stop."""
    pin: int = field(default=17, metadata=_check(
        lambda v: None if 0 <= v <= 53 else f"must be a BCM GPIO number 0..53, got {v}"))
    active_high: bool = True
    #: "schedule": the state the last schedule before now set (else as "last").
    power_on_state: str = field(default="last", metadata=_check(_one_of("off", "on", "last", "schedule")))
    stop_state: str = field(default="off", metadata=_check(_one_of("off", "keep")))
    #: Seconds every switch on lasts before the relay switches off by itself (0: never).
    auto_off: float = field(default=0.0, metadata=_check(
        lambda v: None if 0 <= v <= MAX_AUTO_OFF else f"must be between 0 (never) and "
                                                      f"{MAX_AUTO_OFF} seconds, got {v:g}"))


def _bcm_pin(value: int) -> str | None:
    return None if 0 <= value <= 27 else f"must be a BCM GPIO number 0..27, got {value}"


ADC_CHANNELS = ("A0", "A1", "A2", "A3", "A0-A1", "A0-A3", "A1-A3", "A2-A3")


@dataclass(frozen=True)
class AdcConfig:
    """The ADS1115 the current sensor is read through."""

    enabled: bool = True
    bus: int = field(default=1, metadata=_check(
        lambda v: None if v >= 0 else f"must be an I2C bus number (/dev/i2c-N), got {v}"))
    address: int = field(default=0x48, metadata=_check(
        lambda v: None if 0x48 <= v <= 0x4B else f"must be 0x48..0x4B (72..75), got {v:#x}"))
    channel: str = field(default="A0", metadata=_check(_one_of(*ADC_CHANNELS)))
    full_scale: float = field(default=4.096, metadata=_check(
        lambda v: None if v in ADS1115_RANGES
        else f"must be one of {', '.join(map(str, ADS1115_FULL_SCALES))} volts, got {v}"))
    data_rate: int = field(default=860, metadata=_check(
        lambda v: None if v in ADS1115_DATA_RATES
        else f"must be one of {', '.join(map(str, ADS1115_DATA_RATES))}, got {v}"))
    #: BCM pin wired to ALERT/RDY; 0: not wired (single-shot conversions, slower).
    alert_pin: int = field(default=25, metadata=_check(_bcm_pin))
    vdd: float = field(default=3.3, metadata=_check(
        lambda v: None if 2.0 <= v <= 5.5 else f"must be the ADS1115's supply, 2.0..5.5 V, got {v}"))


@dataclass(frozen=True)
class MeterConfig:
    """The analogue front end and the mains the plug switches."""

    sensor: str = field(default="ACS712-30A", metadata=_check(_one_of(*ACS712_MODELS)))
    #: Overrides the sensor's sensitivity when above 0.
    mv_per_amp: float = field(default=0.0, metadata=_check(
        lambda v: None if v >= 0 else f"must be 0 (use the sensor's) or above, got {v}"))
    zero_volts: float = field(default=2.5, metadata=_check(
        lambda v: None if 0 < v < 5.5 else f"must be the sensor's output at 0 A, got {v}"))
    divider: float = field(default=2 / 3, metadata=_check(
        lambda v: None if 0 < v <= 1 else f"must be the divider's ratio, above 0 and at most 1, got {v}"))
    volts: float = field(default=230.0, metadata=_check(
        lambda v: None if 50 <= v <= 300 else f"must be the mains voltage, 50..300, got {v}"))
    frequency: float = field(default=50.0, metadata=_check(
        lambda v: None if 40 <= v <= 70 else f"must be the mains frequency, 40..70 Hz, got {v}"))
    power_factor: float = field(default=1.0, metadata=_check(
        lambda v: None if 0 < v <= 1 else f"must be above 0 and at most 1, got {v}"))
    interval: float = field(default=1.0, metadata=_check(
        lambda v: None if 0.2 <= v <= 60 else f"must be between 0.2 and 60 seconds, got {v}"))
    flush_interval: float = field(default=60.0, metadata=_check(
        lambda v: None if 5 <= v <= 3600 else f"must be between 5 and 3600 seconds, got {v}"))


@dataclass(frozen=True)
class EnergyConfig:
    """[energy]: what a kWh costs, for the history's costs."""

    price_per_kwh: float = field(default=0.0, metadata=_check(
        lambda v: None if 0 <= v <= 1000 else f"must be 0 (no costs) up to 1000, got {v}"))
    #: Shown after a cost ("EUR", "€"); "" shows none.
    currency: str = field(default="", metadata=_check(
        lambda v: None if len(v) <= 8 and v.isprintable() and v == v.strip()
        else f"must be a short printable name like \"EUR\", got {v!r}"))


@dataclass(frozen=True)
class ProtectionConfig:
    """Switch the load off when it draws too much; 0 turns a limit off."""

    max_power: float = field(default=0.0, metadata=_check(
        lambda v: None if v >= 0 else f"must be 0 (off) or a power in W, got {v}"))
    max_current: float = field(default=0.0, metadata=_check(
        lambda v: None if v >= 0 else f"must be 0 (off) or a current in A, got {v}"))
    hold: float = field(default=2.0, metadata=_check(
        lambda v: None if 0 <= v <= 600 else f"must be between 0 and 600 seconds, got {v}"))
    #: Switch back on by itself after this many seconds; 0: only when the user does.
    retry_after: float = field(default=0.0, metadata=_check(
        lambda v: None if v >= 0 else f"must be 0 (never) or seconds, got {v}"))


DISPLAY_MODES = ("power", "current", "energy_today", "clock", "off")


@dataclass(frozen=True)
class DisplayConfig:
    """[display]: the TM1637's pins, what it shows and how bright."""
    enabled: bool = True
    clk: int = field(default=23, metadata=_check(_bcm_pin))
    dio: int = field(default=24, metadata=_check(_bcm_pin))
    mode: str = field(default="power", metadata=_check(_one_of(*DISPLAY_MODES)))
    brightness: int = field(default=7, metadata=_check(
        lambda v: None if 0 <= v <= 7 else f"must be between 0 and 7, got {v}"))


@dataclass(frozen=True)
class SimulateConfig:
    """The simulated chips of `--simulate`."""

    load_watts: float = field(default=1000.0, metadata=_check(
        lambda v: None if 0 <= v <= 10_000 else f"must be between 0 and 10000 W, got {v}"))
    #: The ADS1115's oscillator may run up to 10 % off; -0.1..0.1.
    oscillator_error: float = field(default=0.0, metadata=_check(
        lambda v: None if -0.1 <= v <= 0.1 else f"must be between -0.1 and 0.1, got {v}"))
    seed: int = 0


@dataclass(frozen=True)
class MdnsConfig:
    """Announce the plug as <node name>.local and as a web service (zeroconf)."""

    enabled: bool = True


@dataclass(frozen=True)
class LogConfig:
    """[log]: how much goes to the journal."""
    level: str = field(default="info", metadata=_check(_one_of("debug", "info", "warning", "error")))


def _client_id(value: str) -> str | None:
    if len(value.encode()) > 128 or not value.isprintable() or value != value.strip():
        return f"must be printable, without surrounding spaces, at most 128 bytes, got {value!r}"
    return None


def _discovery_prefix(value: str) -> str | None:
    return "must not be empty" if not value else prefix_problem(value)


def _topic_prefix(value: str) -> str | None:
    return prefix_problem(value)


@dataclass(frozen=True)
class MqttConfig:
    """[mqtt]: the broker plugd reports to and takes commands from (Home Assistant and others)."""

    #: The broker's host name or address; "" turns MQTT off.
    host: str = ""
    port: int = field(default=1883, metadata=_check(
        lambda v: None if 1 <= v <= 65535 else f"must be a port number 1..65535, got {v}"))
    username: str = ""
    #: Kept like the mesh key: never in a file everyone can read; `password_file` or systemd's
    #: credential `mqtt_password` (which wins) keep it out of this file.
    password: str = ""
    password_file: str = ""
    tls: bool = False
    #: The CA that signed the broker's certificate (PEM); "": the system's CAs.
    ca_file: str = ""
    #: "": plugd-<node id>.
    client_id: str = field(default="", metadata=_check(_client_id))
    #: "": plugd/<node name made fit for a topic>.
    topic_prefix: str = field(default="", metadata=_check(_topic_prefix))
    discovery_prefix: str = field(default="homeassistant", metadata=_check(_discovery_prefix))
    keepalive: int = field(default=30, metadata=_check(
        lambda v: None if 5 <= v <= 3600 else f"must be between 5 and 3600 seconds, got {v}"))
    #: Announce every node heard on the mesh as a device of its own.
    bridge_mesh: bool = False
    #: The mesh across subnets: publish the nodes heard here under <root>/mesh/<id>, and take
    #: in what the plugd of other subnets publish there (plugd.core.meshbridge).
    mesh: bool = False
    #: With `mesh`: re-broadcast the other subnets' nodes here, in the ESP8266 format.
    relay_to_lan: bool = False


@dataclass(frozen=True)
class LocationConfig:
    """[location]: where the plug is, for sunrise and sunset; 0 and 0 means not set."""

    latitude: float = field(default=0.0, metadata=_check(
        lambda v: None if -90 <= v <= 90 else f"must be between -90 and 90 degrees (north), got {v}"))
    longitude: float = field(default=0.0, metadata=_check(
        lambda v: None if -180 <= v <= 180 else f"must be between -180 and 180 degrees (east), got {v}"))

    @property
    def is_set(self) -> bool:
        """Whether a location was given (the Gulf of Guinea's 0, 0 stands for none)."""
        return (self.latitude, self.longitude) != (0.0, 0.0)


#: What the page may change (its Settings view, an import); pins, ports and the http limits
#: stay the administrator's. Each is checked by the same rules as in the file.
PAGE_KEYS = ("node.name", "mesh.interval", "mesh.mesh_key", "display.mode", "display.brightness",
             "relay.power_on_state", "relay.stop_state", "protection.max_power",
             "protection.max_current", "protection.hold", "protection.retry_after",
             "energy.price_per_kwh", "energy.currency", "location.latitude", "location.longitude",
             "mqtt.host", "mqtt.port", "mqtt.username", "mqtt.password", "mqtt.tls",
             "mqtt.discovery_prefix", "mqtt.bridge_mesh")


def _page_keys(value: list[str]) -> str | None:
    sections = {key.split(".")[0] for key in PAGE_KEYS}
    for item in value:
        if item not in PAGE_KEYS and item not in sections:
            return (f"{item!r} is not a setting the page changes (these are: {', '.join(PAGE_KEYS)}; "
                    f"or a whole section: {', '.join(sorted(sections))})")
    return None


@dataclass(frozen=True)
class PageConfig:
    """[page]: the settings the administrator pins to this file's value."""

    #: Settings (or whole sections) the page shows read-only and may not change, nor an import;
    #: the rest may be changed on the page, which wins over this file.
    fixed: list[str] = field(default_factory=list, metadata=_check(_page_keys))


@dataclass(frozen=True)
class Config:
    """The whole configuration, frozen: a change makes a new one."""
    node: NodeConfig = field(default_factory=NodeConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    state: StateConfig = field(default_factory=StateConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    adc: AdcConfig = field(default_factory=AdcConfig)
    meter: MeterConfig = field(default_factory=MeterConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    protection: ProtectionConfig = field(default_factory=ProtectionConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    mdns: MdnsConfig = field(default_factory=MdnsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    location: LocationConfig = field(default_factory=LocationConfig)
    page: PageConfig = field(default_factory=PageConfig)
    #: Run against simulated chips; not a file key (the `--simulate` option).
    simulated: bool = field(default=False, metadata={"internal": True})
    #: The file read ("": none), which the page names for the settings it pins.
    path: str = field(default="", metadata={"internal": True})


def simulate_defaults() -> dict[str, Any]:
    """Defaults of `--simulate`: loopback mesh, port 8080, a state directory of the user's."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state") / "plugd-sim"
    return {"mesh.broadcast": ["127.255.255.255"], "http.port": 8080, "state.dir": str(state)}


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is list:
        return f"a list of {_type_name(typing.get_args(kind)[0]).split(' ', 1)[1]}s"
    return _TYPE_NAMES[kind]


def _coerce(key: str, kind: Any, value: Any) -> Any:
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(key, f"expected {_type_name(kind)}, got {_toml_type(value)}")
        return [_coerce(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return finite(value)
        except ValueError as err:
            raise ConfigError(key, f"must be a finite number, got {err}") from None
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ConfigError(key, f"expected {_type_name(kind)}, got {_toml_type(value)}")
    return value


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return f"{names.get(type(value), type(value).__name__)} ({value!r})"


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(prefix, f"expected a table, got {_toml_type(raw)}")
    known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    for key in raw:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(where, f"unknown key (known here: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, spec in known.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            continue
        kind = hints[name]
        if is_dataclass(kind):
            values[name] = _build(kind, raw[name], key)
            continue
        value = _coerce(key, kind, raw[name])
        problem = spec.metadata.get("check", lambda v: None)(value)
        if problem:
            raise ConfigError(key, problem)
        values[name] = value
    return cls(**values)


def _apply(raw: dict[str, Any], overrides: dict[str, Any], *, keep: bool = False) -> dict[str, Any]:
    """Set dotted keys (`http.port`) in a copy of a nested dict; with `keep`, only unset ones."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        table = merged.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, f"expected a table, got {_toml_type(table)}")
        if not (keep and key in table):
            table[key] = value
    return merged


def parse(text: str, overrides: dict[str, Any] | None = None, *, simulate: bool = False,
          origin: str = "configuration") -> Config:
    """Read TOML text, then `overrides` (dotted keys from the command line) on top."""
    try:
        raw = tomllib.loads(text)
    except (ValueError, RecursionError) as err:  # also an integer of over 4300 digits
        why = "it nests too deeply" if isinstance(err, RecursionError) else err
        raise ConfigError("", f"{origin} is not valid TOML: {why}") from None
    if simulate:
        raw = _apply(raw, simulate_defaults(), keep=True)
    raw = _apply(raw, overrides or {})
    config = replace(_build(Config, raw, ""), simulated=simulate)
    _check_front_end(config)
    _check_mqtt(config.mqtt)
    return config


def _check_mqtt(mqtt: MqttConfig) -> None:
    """What no single [mqtt] key can say alone."""
    if mqtt.ca_file and not mqtt.tls:
        raise ConfigError("mqtt.ca_file", "is used only with tls = true")
    if (mqtt.password or mqtt.password_file) and not mqtt.username:
        key = "mqtt.password" if mqtt.password else "mqtt.password_file"
        raise ConfigError(key, "needs a username (mqtt.username)")
    if mqtt.relay_to_lan and not mqtt.mesh:
        raise ConfigError("mqtt.relay_to_lan", "is used only with mesh = true")


def _check_front_end(config: Config) -> None:
    """The sensor, divider and ADC range must measure the sensor's whole range unclipped."""
    from plugd.core.metering import check_front_end

    meter, adc = config.meter, config.adc
    if not adc.enabled or meter.mv_per_amp > 0:
        return  # a custom sensor has no known range to check against
    try:
        check_front_end(sensor=meter.sensor, divider=meter.divider, full_scale=adc.full_scale,
                        zero_volts=meter.zero_volts, adc_vdd=adc.vdd, differential="-" in adc.channel)
    except ValidationError as err:
        raise ConfigError("meter", f"{meter.sensor}, divider {meter.divider:g} and adc.full_scale "
                                   f"{adc.full_scale:g}: {err.problem}") from None


def updated(config: Config, changes: dict[str, Any]) -> Config:
    """`config` with dotted keys changed, checked as a file's would be."""
    raw = {f.name: asdict(getattr(config, f.name)) for f in fields(config)
           if not f.metadata.get("internal")}
    new = replace(_build(Config, _apply(raw, changes), ""), simulated=config.simulated,
                  path=config.path)
    _check_front_end(new)
    _check_mqtt(new.mqtt)
    return new


def load(path: Path | None, overrides: dict[str, Any] | None = None, *,
         simulate: bool = False, environ: typing.Mapping[str, str] = os.environ) -> Config:
    """Load the configuration file, and the secrets it names.

    With `path` None the default file is read when it exists; `--simulate`
    reads none unless one is named, so a demo never picks up a real plug's LAN
    settings.
    """
    if path is None:
        if simulate or not DEFAULT_PATH.exists():
            return with_secrets(parse("", overrides, simulate=simulate), None, environ)
        path = DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("", f"cannot read {path}: {err}") from None
    config = replace(parse(text, overrides, simulate=simulate, origin=str(path)), path=str(path))
    return with_secrets(config, path, environ)


def _private(path: Path, key: str) -> None:
    """Refuse a secret kept in a file everyone on the machine can read."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise ConfigError(key, f"cannot read {path}: {err.strerror or err}") from None
    if mode & stat.S_IROTH:
        raise ConfigError(key, f"{path} is readable by everyone, so the secret in it is not: "
                               f"chmod o-r {path} (or use systemd's LoadCredential=)")


def _read_secret(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(key, f"cannot read {path}: {err}") from None


def with_secrets(config: Config, path: Path | None,
                 environ: typing.Mapping[str, str] = os.environ) -> Config:
    """The configuration with its secrets in place (the mesh key, the broker's password), each
    found by `_secret`; a secret never comes from a file everyone can read."""
    mesh, mqtt = config.mesh, config.mqtt
    key = _secret(mesh.mesh_key, "mesh.mesh_key", mesh.mesh_key_file, "mesh.mesh_key_file",
                  "mesh_key", path, environ)
    problem = key_problem(key)
    if problem:
        raise ConfigError("mesh.mesh_key", problem)
    password = _secret(mqtt.password, "mqtt.password", mqtt.password_file, "mqtt.password_file",
                       "mqtt_password", path, environ)
    if password and not mqtt.username:
        raise ConfigError("mqtt.password", "needs a username (mqtt.username)")
    if key != mesh.mesh_key:
        config = replace(config, mesh=replace(mesh, mesh_key=key))
    if password != mqtt.password:
        config = replace(config, mqtt=replace(mqtt, password=password))
    return config


def _secret(value: str, key: str, file_name: str, file_key: str, credential: str,
            path: Path | None, environ: typing.Mapping[str, str]) -> str:
    """One secret: systemd's credential `credential` first (a file only the service can
    read), else the file `file_name`, else `value` from a configuration file (`path`) that
    not everyone can read."""
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / credential).is_file():
        return _read_secret(Path(credentials) / credential, key)
    if file_name:
        _private(Path(file_name), file_key)
        return _read_secret(Path(file_name), file_key)
    if value and path is not None:
        _private(path, key)
    return value

