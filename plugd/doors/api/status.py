"""Commands that report: the status, the events and the power history."""

from __future__ import annotations

from typing import Any

from plugd.core import history
from plugd.doors.api.base import Api, command
from plugd.doors.api.energy import power_history


@command("request_status")
async def _request_status(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_status", **api.host.status())


@command("request_events")
async def _request_events(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_events", events=[e.to_json() for e in api.plug.events])


@command("request_history")
async def _request_history(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Power over the last `range` seconds (default 600), as [seconds since 2000, W or null] a
    second up to 10 minutes, else as [seconds since 2000, mean W, lowest, highest] a minute
    (from the history database, up to two days)."""
    if "range" not in msg:
        return api.answer("response_history", history=api.host.history())
    span = history.power_range(msg)
    if span <= history.SECONDS_RANGE:
        return api.answer("response_history", history=api.host.history()[-span:], range=span, step=1)
    return api.answer("response_history", history=await power_history(api, span), range=span,
                      step=history.MINUTE)
