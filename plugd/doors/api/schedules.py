"""Commands on the schedules: list, save (add or edit), delete.

Each save or delete is on disk before it is answered; a refused one changes
nothing. The answer's `next` is the next run in seconds since the Unix epoch
(UTC), null when the schedule is off or the sun does not rise or set then.
"""

from __future__ import annotations

from typing import Any

from plugd.core.model import MAX_NODE_ID, read_int
from plugd.core.schedules import MAX_SCHEDULES, parse
from plugd.doors.api.base import Api, command, nested
from plugd.errors import ValidationError
from plugd.service.scheduler import Scheduler, zone_key


def _scheduler(api: Api) -> Scheduler:
    scheduler: Scheduler = api.host.scheduler
    return scheduler


def _location(scheduler: Scheduler) -> dict[str, float] | None:
    where = scheduler.location
    return None if where is None else {"latitude": where.latitude, "longitude": where.longitude}


@command("request_schedules")
async def _request_schedules(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    scheduler = _scheduler(api)
    return api.answer("response_schedules", schedules=[scheduler.view(s) for s in scheduler.schedules],
                      location=_location(scheduler), timezone=zone_key(scheduler.tz),
                      max=MAX_SCHEDULES)


@command("save_schedule")
async def _save_schedule(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Replace the schedule with that id, or add it; without an id (or 0) a new id is given."""
    scheduler = _scheduler(api)
    obj = dict(nested(msg, "schedule"))
    async with scheduler.lock:
        if obj.get("id") in (None, 0):
            obj["id"] = scheduler.next_id()
        schedule = parse(obj, "schedule", location=scheduler.location)
        old = scheduler.get(schedule.id)
        if old is None and len(scheduler.schedules) >= MAX_SCHEDULES:
            raise ValidationError("schedule", f"at most {MAX_SCHEDULES} schedules: delete one first")
        schedules = [schedule if s.id == schedule.id else s for s in scheduler.schedules]
        if old is None:
            schedules.append(schedule)
        await scheduler.store(schedules, fresh=[schedule.id])
    state = "" if schedule.enabled else ", off"
    api.plug.record("schedule", f"schedule {schedule.id} {'saved' if old else 'added'}: "
                    f"{schedule.action} at {schedule.words()}{state}", api.cause,
                    f"schedule {schedule.id}")
    return api.answer("response_save_schedule", success=True, schedule=scheduler.view(schedule))


@command("delete_schedule")
async def _delete_schedule(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    scheduler = _scheduler(api)
    schedule_id = read_int(msg, "id", "message", low=1, high=MAX_NODE_ID)
    async with scheduler.lock:
        if scheduler.get(schedule_id) is None:
            raise ValidationError("id", f"there is no schedule {schedule_id}")
        await scheduler.store([s for s in scheduler.schedules if s.id != schedule_id], fresh=[])
    api.plug.record("schedule", f"schedule {schedule_id} deleted", api.cause, f"schedule {schedule_id}")
    return api.answer("response_delete_schedule", success=True, id=schedule_id)
