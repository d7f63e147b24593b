"""Settings changed from the page, kept in the state directory over the configuration file.

The configuration file is the administrator's (and read-only to the sandboxed
service); what a user changes on the page lives in `settings.json` and is
laid over the file's values at start and on every reload. A setting the file
pins (`[page] fixed`) keeps the file's value: the page shows it read-only, a
change to it is refused by name, and a value kept from before it was pinned
waits, unused, until it is no longer pinned.
"""

from __future__ import annotations

from typing import Any

from plugd.core.model import require_object
from plugd.errors import ConfigError, ValidationError
from plugd.service.config import PAGE_KEYS, Config, updated
from plugd.service.store import StateDir

SETTINGS_FILE = "settings.json"
#: What the page may change: the rest needs the administrator (pins, ports, limits).
KEYS = PAGE_KEYS
#: Settings the page may set but never read back (nor an export carry): only whether one is set.
SECRETS = frozenset({"mqtt.password", "mesh.mesh_key"})


def parse(obj: Any, where: str = "settings") -> dict[str, Any]:
    """A settings object: only known keys; their values are checked by `apply`."""
    obj = require_object(obj, where)
    unknown = [key for key in obj if key not in KEYS]
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}",
                              f"cannot be changed here (these can: {', '.join(KEYS)})")
    return dict(obj)


def fixed(config: Config) -> dict[str, str]:
    """The settings the file pins (`[page] fixed`), each with the file that does, for the page."""
    pinned = config.page.fixed
    where = config.path or "the configuration"
    return {key: where for key in KEYS if key in pinned or key.split(".")[0] in pinned}


def unpinned(config: Config, changes: dict[str, Any], where: str = "settings") -> dict[str, Any]:
    """`changes` less those that leave a pinned setting as it is (an unchanged form, an export
    of this plug); ValidationError names the first that would change one, or that sets a pinned
    secret (whose value is never compared, so no guess at it is confirmed)."""
    pinned = fixed(config)
    kept = {}
    for key, value in changes.items():
        if key not in pinned:
            kept[key] = value
        elif key in SECRETS or value != _value(config, key):
            raise ValidationError(f"{where}.{key}", f"is fixed in {pinned[key]} ([page] fixed): "
                                                    "change it there, not here")
    return kept


def apply(config: Config, settings: dict[str, Any], where: str = "settings") -> Config:
    """The configuration with the settings laid over it; ConfigError names a bad one under
    `where`, as `parse` names an unknown one."""
    try:
        return updated(config, settings)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err.field}" if err.field else where, err.problem) from None


def laid_over(config: Config, kept: dict[str, Any]) -> Config:
    """The file's configuration with the kept settings over it, at start and on a reload; the
    settings the file pins keep the file's value."""
    pinned = fixed(config)
    return apply(config, {key: value for key, value in kept.items() if key not in pinned})


def _value(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def view(config: Config, node_name: str = "") -> dict[str, Any]:
    """The settings the page may change, with their values now; secrets left out. `node_name`
    is the name in use, shown while the configuration leaves it to the hostname (an export
    passes none, so the name stays derived on the plug it goes to)."""
    values = {key: _value(config, key) for key in KEYS if key not in SECRETS}
    values["node.name"] = values["node.name"] or node_name
    return values


def secrets_set(config: Config) -> dict[str, bool]:
    """Which secrets have a value (the page says "set", never what)."""
    return {key: bool(_value(config, key)) for key in SECRETS}


def load(state: StateDir) -> dict[str, Any]:
    """The settings kept from the page (a bad file is set aside)."""
    return state.load(SETTINGS_FILE, parse, dict)
