"""Commands on the configuration: settings, calibration, export and import.

An import is refused whole on any error, checked by the same validators as
each part's own command; then each part is stored whole or not at all.
"""

from __future__ import annotations

from typing import Any

from plugd.core import validate
from plugd.core.model import describe, read_float, read_int
from plugd.doors.api.base import Api, command, nested
from plugd.errors import StoreError, ValidationError
from plugd.service import settings

EXPORT_VERSION = 1
CALIBRATIONS = ("zero", "current", "power", "voltage", "reset")


@command("calibrate")
async def _calibrate(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """`what`: zero (relay off), current/power (known load on), voltage, reset; `value` the known one."""
    meter = api.host.meter
    if meter is None:
        raise ValidationError("what", "this plug has no meter (adc.enabled = false)")
    what = msg.get("what")
    if what not in CALIBRATIONS:
        raise ValidationError("what", f"expected one of {', '.join(CALIBRATIONS)}, got {describe(what)}")
    value = read_float(msg, "value", "message") if "value" in msg else None
    calibration = meter.calibrate(what, value)
    await meter.store_calibration(calibration)
    api.plug.record("meter", f"calibrated: {what}" + (f" = {value:g}" if value is not None else ""),
                    api.cause, "calibration")
    return api.answer("response_calibrate", success=True, calibration=calibration.to_json())


def _settings_fields(api: Api) -> dict[str, Any]:
    """The settings as the page shows them: values, which secrets are set, which the file pins."""
    config = api.host.config
    return {"settings": settings.view(config, api.plug.node_name),
            "secrets": settings.secrets_set(config), "fixed": settings.fixed(config)}


@command("request_settings")
async def _request_settings(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_settings", **_settings_fields(api))


@command("save_settings")
async def _save_settings(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    changes = settings.unpinned(api.host.config, settings.parse(nested(msg, "settings")))
    await api.host.save_settings(changes)
    if changes:
        api.plug.record("config", f"settings changed: {', '.join(sorted(changes))}", api.cause,
                        "settings")
    return api.answer("response_save_settings", success=True, **_settings_fields(api))


@command("export_config")
async def _export_config(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    meter, pinned = api.host.meter, settings.fixed(api.host.config)
    return api.answer("response_export_config", config={
        "version": EXPORT_VERSION, "node": {"id": api.plug.node_id, "name": api.plug.node_name},
        "things": api.plug.things_json(), "recipes": [r.to_json() for r in api.plug.recipes],
        "settings": {key: value for key, value in settings.view(api.host.config).items()
                     if key not in pinned},  # the pinned ones are the file's, not the page's
        "calibration": None if meter is None else meter.calibration.to_json()})


def _list(config: dict[str, Any], key: str) -> list[Any]:
    value = config.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f"config.{key}", f"expected a list, got {describe(value)}")
    return value


@command("import_config")
async def _import_config(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Recipes, settings, calibration and the things' override flags; refused whole on any error."""
    plug, meter = api.plug, api.host.meter
    config = nested(msg, "config")
    version = read_int(config, "version", "config")
    if version != EXPORT_VERSION:
        raise ValidationError("config.version", f"expected {EXPORT_VERSION}, got {version}")
    recipes = validate.recipes(config.get("recipes", []), plug.things, "config.recipes")
    given = config.get("settings")
    changes = settings.unpinned(api.host.config,
                                settings.parse({} if given is None else given, "config.settings"),
                                "config.settings")
    settings.apply(api.host.config, changes, "config.settings")  # checked before anything is stored
    overrides = {}
    for i, obj in enumerate(_list(config, "things")):
        update = validate.thing_override(obj, plug.things, f"config.things[{i}]")
        if update.override is not None:
            overrides[update.thing.id] = update.override
    calibration = None
    if config.get("calibration") is not None:  # checked even by a plug with no meter to take it
        calibration = validate.calibration(config["calibration"], "config.calibration")
    # Each part is stored whole or not at all; a disk failing between parts is told exactly.
    stored: list[str] = []
    before = {thing_id: plug.things[thing_id].override for thing_id in overrides}
    try:
        async with plug.recipes_lock:
            await plug.store_recipes(recipes, fresh=[r.id for r in recipes])
        stored.append("the recipes")
        await api.host.save_settings(changes)
        stored.append("the settings")
        if calibration is not None and meter is not None:
            await meter.store_calibration(calibration)
            stored.append("the calibration")
        for thing_id, override in overrides.items():
            plug.set_override(thing_id, override, api.cause)
        await plug.save_things()
    except StoreError as err:
        for thing_id, override in before.items():  # flags live only in things.json: put back
            plug.set_override(thing_id, override, api.cause)
        raise StoreError(f"the import stopped ({' and '.join(stored) or 'nothing'} stored, "
                         f"the rest not): {err}") from None
    plug.record("config", "configuration imported", api.cause, "settings")
    return api.answer("response_import_config", success=True)
