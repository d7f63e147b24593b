"""Settings changed from the page, kept in the state directory over the configuration file.

The configuration file is the administrator's (and read-only to the sandboxed
service); what a user changes on the page lives in `settings.json` and is
laid over the file's values at start and on every reload.
"""

from __future__ import annotations

from typing import Any

from plugd.core.model import require_object
from plugd.errors import ConfigError, ValidationError
from plugd.service.config import Config, updated
from plugd.service.store import StateDir

SETTINGS_FILE = "settings.json"
#: What the page may change: the rest needs the administrator (pins, ports, limits).
KEYS = ("node.name", "mesh.interval", "display.mode", "display.brightness",
        "mqtt.host", "mqtt.port", "mqtt.username", "mqtt.password", "mqtt.tls",
        "mqtt.discovery_prefix", "mqtt.bridge_mesh", "location.latitude", "location.longitude")
#: Settings the page may set but never read back (nor an export carry): only whether one is set.
SECRETS = frozenset({"mqtt.password"})


def parse(obj: Any, where: str = "settings") -> dict[str, Any]:
    """A settings object: only known keys; their values are checked by `apply`."""
    obj = require_object(obj, where)
    unknown = [key for key in obj if key not in KEYS]
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}",
                              f"cannot be changed here (these can: {', '.join(KEYS)})")
    return dict(obj)


def apply(config: Config, settings: dict[str, Any], where: str = "settings") -> Config:
    """The configuration with the settings laid over it; ConfigError names a bad one under
    `where`, as `parse` names an unknown one."""
    try:
        return updated(config, settings)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err.field}" if err.field else where, err.problem) from None


def _value(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def view(config: Config) -> dict[str, Any]:
    """The settings the page may change, with their values now; secrets left out."""
    return {key: _value(config, key) for key in KEYS if key not in SECRETS}


def secrets_set(config: Config) -> dict[str, bool]:
    """Which secrets have a value (the page says "set", never what)."""
    return {key: bool(_value(config, key)) for key in SECRETS}


def load(state: StateDir) -> dict[str, Any]:
    """The settings kept from the page (a bad file is set aside)."""
    return state.load(SETTINGS_FILE, parse, dict)
