"""Commands that report: the status, the events and the power history."""

from __future__ import annotations

from typing import Any

from plugd.doors.api.base import Api, command


@command("request_status")
async def _request_status(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_status", **api.host.status())


@command("request_events")
async def _request_events(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_events", events=[e.to_json() for e in api.plug.events])


@command("request_history")
async def _request_history(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """The last 10 minutes of power, one point a second: [seconds since 2000, W or null]."""
    return api.answer("response_history", history=api.host.history())
