"""The plug core: every input in, what it decided out; no sockets, threads or clock of its own.

`PlugCore` holds the plug's things, its recipes, the mesh registry and the
event log. The asyncio layer (`plugd.service.plug`) feeds it inputs (a
datagram, a person's command, a meter reading, a protection verdict, a
sensor fault, a clock tick; schedules, MQTT and HTTP commands come in as
commands with their own cause) together with the time, and hands the `Output`
to the outlets: the relay pin, the WebSocket pushes, the UDP broadcaster, the
journal and the store. Outlets never reach back in.

The relay pin is the one outlet whose failure changes what is true, so the
core asks for it in two steps: an output lists `drives` (switch the pin), the
caller does so and reports back with `relay_switched` or `relay_refused`; only
then does the relay thing take its new value and its recipes run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from plugd.core import authority
from plugd.core.events import Event, EventLog
from plugd.core.labels import Labels, Origin, Shown, own_label, resolve, with_unit
from plugd.core.meshkey import Guard, Signer
from plugd.core.model import MEASURED, METERED, ON, Recipe, Thing, ThingId, ThingType, esp_time
from plugd.core.recipes import Action, RecipeBook
from plugd.core.registry import Heard, Peer, Registry
from plugd.core.wire import Packet, decode, encode, encode_names, format_clock, format_number
from plugd.errors import ValidationError, WireError

#: Things whose value no current can hold while the relay is off.
LOAD = (ThingId.POWER, ThingId.CURRENT)
#: How deep recipes may trigger recipes (a rule on the plug that switches the plug).
MAX_CASCADE = 8
#: Node online/offline events told one by one in a minute, at most; the rest are counted and
#: told as one, so spoofed node ids cannot bury the events, the journal and the pages.
NODE_NEWS_PER_MINUTE = 60
RELATION_WORDS = ("is", "is not", "is above", "is below", "is at most", "is at least")


class Now(NamedTuple):
    """The time of an input: `wall` (Unix seconds, for dates and what people read) and `mono`
    (monotonic seconds, for durations, which clock steps must not disturb)."""

    wall: float
    mono: float


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a value changed: its kind (an `authority.Source`, or mesh, display, ...) and a detail
    in words ("3, Kitchen thing 5 below 19" for a recipe, the address for a person)."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}" if self.detail else self.kind


class Change(NamedTuple):
    """A local thing that took a new value, a peer that was heard or lost, or an event.

    A tuple: one is made for every packet and every reading, and tuples are cheap.
    """

    thing: Thing | None = None
    cause: Cause | None = None
    peer: Peer | None = None
    event: Event | None = None


class Drive(NamedTuple):
    """Switch the relay pin `on` (or off) for `cause`; report back how it went. `depth`: how
    many recipes deep the request came, so that recipes switching each other stop."""

    on: bool
    cause: Cause
    depth: int = 0
    #: Seconds the relay stays on before the auto-off switches it off (None: the default,
    #: `PlugCore.auto_off`; 0: never).
    hold: float | None = None


@dataclass(slots=True)
class Output:
    """What one input decided, in order: pins to drive first, then changes for the outlets."""

    changes: list[Change] = field(default_factory=list)
    drives: list[Drive] = field(default_factory=list)
    #: Files whose content changed: "things", "outcomes" (the recipes' outcomes), "nodes",
    #: "auto_off" (the auto-off's deadline).
    persist: set[str] = field(default_factory=set)
    #: A value that travels on the mesh changed: broadcast soon.
    broadcast: bool = False
    #: For a command: whether the thing took the value asked for, and why not when refused.
    changed: bool = False
    refusal: str = ""

    def merge(self, other: Output) -> None:
        """Append what a follow-up input (a pin's report) decided."""
        self.changes += other.changes
        self.drives += other.drives
        self.persist |= other.persist
        self.broadcast = self.broadcast or other.broadcast
        self.changed = self.changed or other.changed
        self.refusal = self.refusal or other.refusal


def duration_words(seconds: float) -> str:
    """A duration as people say it: "45 s", "10 min", "1 h 30 min"."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{secs} s" if secs or not whole else ""]
    return " ".join(p for p in parts if p)


def recipe_sentence(recipe: Recipe, source: str, shown: Shown, action: str) -> str:
    """A recipe as a person reads it, with the names and units people gave its values:
    "If Fridge Power is above 100 W then switch off"."""
    target = with_unit(f"{recipe.target_value:g}", shown.label)
    return f"If {source} {RELATION_WORDS[recipe.relation]} {target} then {action}"


def told(cause: Cause, by_recipe: str, plain: str) -> str:
    """An event's words: a recipe's change names the recipe in full, from its cause's detail
    ("<id>, <sentence>"): "Recipe “If … then switch off” switched the plug off"; any other
    cause's says what happened (`plain`)."""
    if cause.kind != authority.Source.RECIPE:
        return plain
    return f"Recipe “{cause.detail.partition(', ')[2]}” {by_recipe}"


class PlugCore:
    """The plug's state and every decision about it; see the module's docstring."""

    def __init__(self, *, node_id: int, node_name: str, things: Iterable[Thing],
                 recipes: RecipeBook, registry: Registry, relay_on: bool,
                 guard: Guard | None = None, signer: Signer | None = None) -> None:
        self.node_id = node_id
        self.node_name = node_name
        self.things: dict[int, Thing] = {t.id: t for t in sorted(things, key=lambda t: t.id)}
        self.things[ThingId.PLUG] = replace(self.things[ThingId.PLUG], value=ON if relay_on else 0.0)
        for thing_id in MEASURED:  # measured values start from nothing; a sensor sets them
            self.things[thing_id] = replace(self.things[thing_id], value=0.0)
        self.invalid: set[int] = set(METERED)
        self.recipes = recipes
        self.registry = registry
        #: The labels people gave peers' values, by (node id, thing id) (plugd.core.labels).
        self.labels: Labels = {}
        self.events = EventLog()
        self.guard = guard
        self.signer = signer
        #: Why the protection switched the relay off; nothing automatic switches it on meanwhile.
        self.tripped: str | None = None
        #: Trips since start (a counter for monitoring).
        self.trips = 0
        #: Why the relay's pin refused the last switching (None: it switched).
        self.relay_fault: str | None = None
        #: Node comings and goings told this minute, held back beyond the budget, and since when.
        self._news_told, self._news_held, self._news_since = 0, 0, float("-inf")
        self._depth = 0
        #: Seconds every switch on lasts before the auto-off ([relay] auto_off; 0: never).
        self.auto_off = 0.0
        #: The auto-off's deadline: wall time (kept across restarts, shown to people) and the
        #: monotonic one it is timed by (a clock step neither hastens nor delays it).
        self.off_at: float | None = None
        self._off_at_mono = 0.0
        self._off_after = 0.0
        self._hold: float | None = None

    # --- commands: people, recipes, the protection, the meter -------------------------

    def set_thing(self, thing_id: int, value: float, cause: Cause, now: Now) -> Output:
        """Ask for a local thing to take `value`; the authority decides, the relay asks its pin."""
        out = Output()
        self._set(out, thing_id, value, cause, now)
        return out

    def switch_for(self, seconds: float, cause: Cause, now: Now) -> Output:
        """Switch the relay on for `seconds`, then off by the auto-off; if it is on already,
        the auto-off is set from now."""
        out = Output()
        if self.things[ThingId.PLUG].value == ON:
            self._arm(out, seconds, cause, now)
            out.changed = True
            out.changes.append(Change(thing=self.things[ThingId.PLUG], cause=cause))
            return out
        self._hold = seconds
        try:
            self._set(out, ThingId.PLUG, ON, cause, now)
        finally:
            self._hold = None
        return out

    def restore_auto_off(self, off_at: float, after: float, now: Now) -> Output:
        """At start: the auto-off that was running, if the relay is on; past due, it switches
        off at the next tick."""
        out = Output()
        if self.things[ThingId.PLUG].value == ON:
            self.off_at, self._off_after = off_at, after
            self._off_at_mono = now.mono + (off_at - now.wall)
        else:
            out.persist.add("auto_off")  # a stale deadline: forget it
        return out

    def auto_off_json(self) -> dict[str, float] | None:
        """The auto-off as kept in the state directory (None: none running)."""
        return None if self.off_at is None else {"off_at": self.off_at, "after": self._off_after}

    def _arm(self, out: Output, seconds: float, cause: Cause, now: Now) -> None:
        """Start (or restart) the auto-off: off `seconds` from now; 0 stops it."""
        had = self.off_at
        if seconds > 0:
            self.off_at, self._off_at_mono, self._off_after = now.wall + seconds, now.mono + seconds, seconds
            self._event(out, now, "relay", "auto-off",
                        f"auto-off in {duration_words(seconds)}", cause)
        else:
            self.off_at = None
        if had is not None or self.off_at is not None:
            out.persist.add("auto_off")

    def set_override(self, thing_id: int, override: bool, cause: Cause, now: Now) -> Output:
        """Pin a thing against automatic writers, or hand it back to its recipes.

        Handing back applies at once the last recipe whose condition holds now.
        """
        out = Output()
        thing = self._thing(thing_id)
        if thing.override == override:
            return out
        thing = self.things[thing_id] = replace(thing, override=override)
        out.changed = True
        self._event(out, now, "thing", f"thing {thing_id}",
                    f"{thing.name}: override {'on' if override else 'off'}", cause)
        out.persist.add("things")
        out.changes.append(Change(thing=thing, cause=cause))
        if not override:
            action = self.recipes.holding(thing_id)
            if action is not None:
                self._act(out, action, now)
        return out

    def trip(self, reason: str, now: Now) -> Output:
        """The protection switches the relay off, override or not, and holds it off."""
        out = Output()
        self.tripped = reason
        self.trips += 1
        self._event(out, now, "protection", "protection", f"protection tripped: {reason}",
                    Cause("protection"))
        self._set(out, ThingId.PLUG, 0.0, Cause("protection", reason), now)
        return out

    def invalidate(self, thing_ids: Iterable[int], cause: Cause) -> Output:
        """Mark values whose sensor failed: they are not sent nor used, rather than read as 0."""
        out = Output()
        for thing_id in thing_ids:
            if thing_id not in self.invalid:
                self.invalid.add(thing_id)
                self.recipes.forget_source(self.node_id, thing_id)
                out.changes.append(Change(thing=self.things[thing_id], cause=cause))
        return out

    def record(self, kind: str, subject: str, message: str, cause: Cause, now: Now) -> Output:
        """An event from outside the core (a login, a display fault, a settings change)."""
        out = Output()
        self._event(out, now, kind, subject, message, cause)
        return out

    def replace_recipes(self, recipes: list[Recipe], fresh: Iterable[int]) -> Output:
        """A new recipe list in force (already stored); the `fresh` ids start unknown."""
        self.recipes.replace_all(recipes, fresh)
        return Output(persist={"outcomes"})

    # --- the relay pin's report ---------------------------------------------------------

    def relay_switched(self, drive: Drive, now: Now) -> Output:
        """The pin switched as asked: the relay thing takes the value, its recipes run."""
        out = Output()
        if self.relay_fault is not None:
            self.relay_fault = None
            self._event(out, now, "fault", "relay", "the relay switches again", drive.cause)
        self._depth = drive.depth
        if drive.on:
            self._arm(out, self.auto_off if drive.hold is None else drive.hold, drive.cause, now)
        elif self.off_at is not None:
            self._arm(out, 0.0, drive.cause, now)  # switched off: nothing left to time
        try:
            self._apply(out, ThingId.PLUG, ON if drive.on else 0.0, drive.cause, now)
            if not drive.on:  # no current can flow through an open relay
                for thing_id in LOAD:
                    if thing_id not in self.invalid:
                        self._apply(out, thing_id, 0.0, Cause("sensor", "relay off"), now)
        finally:
            self._depth = 0
        return out

    def relay_refused(self, drive: Drive, error: str, now: Now) -> Output:
        """The pin refused: the relay keeps its value; the fault is told once, not at every retry."""
        out = Output(refusal=error)
        if error != self.relay_fault:
            self.relay_fault = error
            self._event(out, now, "fault", "relay", error, drive.cause)
        return out

    # --- the mesh and the clock -----------------------------------------------------------

    def receive(self, data: bytes, address: str, now: Now) -> Output:
        """One datagram from the mesh."""
        out = Output()
        counters = self.registry.counters
        counters.received += 1
        try:
            packet = decode(data)
        except WireError:
            counters.invalid += 1
            return out
        if packet.via == self.node_id:  # our own re-broadcast of a node of another subnet
            counters.own += 1
            return out
        if self.guard is not None and not self._admitted(out, data, packet.node_id, address, now):
            return out
        counters.rejected_fields += packet.rejected
        return self._take(out, packet, address, now)

    def receive_relayed(self, packet: Packet, address: str, now: Now) -> Output:
        """Values of a node of another subnet, relayed by the plugd `packet.via` through the
        MQTT broker: into the registry and to the recipes like a datagram, unless the node is
        heard directly (plugd.core.registry decides)."""
        out = Output()
        if not packet.via:
            raise ValidationError("via", "a relayed node's values name the plugd that relayed them")
        return self._take(out, packet, address, now)

    def _take(self, out: Output, packet: Packet, address: str, now: Now) -> Output:
        """A packet admitted: the registry, then each value to the recipes."""
        heard = self.registry.heard(packet, address, now.mono, esp_time(now.wall))
        if heard is None:
            return out
        self._heard(out, heard, now)
        for item in packet.fields:
            self._feed(out, packet.node_id, item.thing_id, item.value, now)
        return out

    def _admitted(self, out: Output, data: bytes, node_id: int, address: str, now: Now) -> bool:
        """The mesh key's verdict on a datagram: counted when refused, recorded when a node moved."""
        assert self.guard is not None
        verdict = self.guard.check(data, node_id, address)
        counters = self.registry.counters
        if verdict.refused is not None:
            setattr(counters, verdict.refused, getattr(counters, verdict.refused) + 1)
            return False
        if verdict.moved_from is not None:
            counters.address_changes += 1
        if verdict.report:
            self._event(out, now, "node", f"node {node_id}",
                        f"node {node_id} now speaks from {address} "
                        f"(was {verdict.moved_from}; counted, not refused)", Cause("mesh"))
        return True

    def _heard(self, out: Output, heard: Heard, now: Now) -> None:
        peer = heard.peer
        if heard.is_new or heard.renamed:
            out.persist.add("nodes")
        if heard.came_online:
            self._node_news(out, now, peer, f"node {peer.name} ({peer.id}) online at {peer.address}")
        out.changes.append(Change(peer=peer))

    def _node_news(self, out: Output, now: Now, peer: Peer, message: str) -> None:
        """A node came or went: an event, within the budget; beyond it, counted for the summary."""
        if self._news_told < NODE_NEWS_PER_MINUTE:
            self._news_told += 1
            self._event(out, now, "node", f"node {peer.id}", message, Cause("mesh"))
        else:
            self._news_held += 1

    def tick(self, now: Now) -> Output:
        """Once a second: the clock thing, offline detection, the node news budget."""
        out = Output()
        if self.off_at is not None and now.mono >= self._off_at_mono:
            after = self._off_after
            self._arm(out, 0.0, Cause("auto-off"), now)
            cause = Cause("auto-off", f"after {duration_words(after)}")
            self._set(out, ThingId.PLUG, 0.0, cause, now)
            if out.refusal:
                self._event(out, now, "relay", "auto-off",
                            f"Plug stays on: {out.refusal}", cause)
                out.refusal = ""
        hour = float(datetime.fromtimestamp(now.wall).hour)
        self._apply(out, ThingId.CLOCK, hour, Cause("clock"), now)
        self._feed(out, self.node_id, ThingId.CLOCK, hour, now)
        if now.mono - self._news_since >= 60.0:
            if self._news_held:
                self._event(out, now, "node", "nodes",
                            f"{self._news_held} more nodes came online or went offline in a "
                            "minute, too many to tell one by one (spoofed node ids?)", Cause("mesh"))
            self._news_since, self._news_told, self._news_held = now.mono, 0, 0
        for peer in self.registry.sweep(now.mono):
            self.recipes.forget(peer.id)
            self._node_news(out, now, peer, f"node {peer.name} ({peer.id}) offline")
            out.changes.append(Change(peer=peer))
        return out

    # --- the one path of every change ---------------------------------------------------

    def _thing(self, thing_id: int) -> Thing:
        thing = self.things.get(thing_id)
        if thing is None:
            raise ValidationError("thing.id", f"there is no local thing {thing_id}")
        return thing

    def _set(self, out: Output, thing_id: int, value: float, cause: Cause, now: Now) -> None:
        """A request to set a thing: measured things take only measurements; the authority
        decides the rest; the relay goes through its pin first."""
        thing = self._thing(thing_id)
        if thing.value == value and thing_id not in self.invalid:
            return  # nothing to change (pages send a whole thing back, measured values too)
        measuring = authority.source_of(cause.kind) in authority.MEASURING
        if measuring != (thing_id in MEASURED):
            raise ValidationError("thing.id", f"thing {thing_id} ({thing.name}) is "
                                              f"{'not ' if measuring else ''}measured")
        relay = thing_id == ThingId.PLUG
        verdict = authority.decide(cause.kind, relay=relay, on=value == ON, tripped=self.tripped,
                                   override=thing.override)
        if not verdict.allowed:
            out.refusal = verdict.refusal
            automatic = cause.kind in (authority.Source.RECIPE, authority.Source.SCHEDULE)
            if automatic and value != thing.value:
                self._event(out, now, cause.kind, f"{cause.kind} {cause.detail.partition(',')[0]}",
                            f"{thing.name} stays {self._shown(thing)}: {verdict.refusal}", cause)
            return
        if verdict.clears_trip:
            self._event(out, now, "protection", "protection",
                        f"protection cleared (was: {self.tripped})", cause)
            self.tripped = None
        if relay:
            out.drives.append(Drive(value == ON, cause, self._depth, self._hold))
            return
        self._apply(out, thing_id, value, cause, now)

    def _apply(self, out: Output, thing_id: int, value: float, cause: Cause, now: Now) -> None:
        """A thing takes its value: tell the outlets, persist, run the recipes it feeds."""
        thing = self.things[thing_id]
        if thing.value == value and thing_id not in self.invalid:
            return
        thing = self.things[thing_id] = thing.with_value(value, esp_time(now.wall))
        self.invalid.discard(thing_id)
        out.changed = True
        kind = cause.kind
        if thing_id == ThingId.PLUG:
            state = "on" if value == ON else "off"
            self._event(out, now, "relay", "relay",
                        told(cause, f"switched the plug {state}", f"relay {state}"), cause)
        elif thing_id not in MEASURED:
            shown = format_number(value)
            self._event(out, now, "thing", f"thing {thing_id}",
                        told(cause, f"set {thing.name} to {shown}", f"{thing.name} set to {shown}"),
                        cause)
        if thing_id not in MEASURED:
            out.persist.add("things")
        out.broadcast = out.broadcast or kind != authority.Source.CLOCK
        out.changes.append(Change(thing=thing, cause=cause))
        self._feed(out, self.node_id, thing_id, value, now)

    def _feed(self, out: Output, node_id: int, thing_id: int, value: float, now: Now) -> None:
        """Hand a source value to the recipes and carry out the ones that fire."""
        if not self.recipes.watches(node_id, thing_id):
            return
        if self._depth >= MAX_CASCADE:
            self._event(out, now, "recipe", "recipes", f"recipes switch each other in a loop; "
                        f"stopped at depth {MAX_CASCADE}", Cause("recipe"))
            return
        revision = self.recipes.revision
        actions = self.recipes.observe(node_id, thing_id, value, esp_time(now.wall),
                                       self.registry.is_online)
        if self.recipes.revision != revision:  # kept across restarts: written when one changes
            out.persist.add("outcomes")
        self._depth += 1
        try:
            for action in actions:
                self._act(out, action, now)
        finally:
            self._depth -= 1

    def _act(self, out: Output, action: Action, now: Now) -> None:
        recipe = self.recipes.get(action.recipe_id)
        assert recipe is not None
        shown = self.shown(recipe.source_node_id, recipe.source_thing_id)
        sentence = recipe_sentence(recipe, f"{self._node_words(recipe.source_node_id)} "
                                           f"{shown.label.name}", shown, self._action_words(recipe))
        cause = Cause("recipe", f"{recipe.id}, {sentence}")
        try:
            self._set(out, action.thing_id, action.value, cause, now)
        except ValidationError as err:
            self._event(out, now, "recipe", f"recipe {recipe.id}", f"cannot act: {err}", cause)

    def _node_words(self, node_id: int) -> str:
        if node_id == self.node_id:
            return self.node_name
        peer = self.registry.peers.get(node_id)
        return peer.name if peer is not None else f"node {node_id}"

    def _action_words(self, recipe: Recipe) -> str:
        """What a recipe does, in words: "switch on", "set Heater to 2"."""
        if recipe.local_thing_id == ThingId.PLUG:
            return f"switch {'on' if recipe.local_value == ON else 'off'}"
        shown = self.shown(self.node_id, recipe.local_thing_id).label
        return f"set {shown.name} to {with_unit(format_number(recipe.local_value), shown)}"

    def shown(self, node_id: int, thing_id: int) -> Shown:
        """What people read for a value of this plug or of a peer (plugd.core.labels): the one
        place pages, events and the MQTT bridge take names and units from."""
        if node_id == self.node_id:
            thing = self.things.get(thing_id)
            if thing is not None:
                return Shown(own_label(thing.id, thing.name, thing.type), Origin.OWN)
        peer = self.registry.peers.get(node_id)
        return resolve(thing_id, self.labels.get((node_id, thing_id)),
                       None if peer is None else peer.learned.get(thing_id))

    def _event(self, out: Output, now: Now, kind: str, subject: str, message: str,
               cause: Cause) -> None:
        event = self.events.add(Event(time=esp_time(now.wall), kind=kind, subject=subject,
                                      message=message, cause=str(cause)))
        out.changes.append(Change(event=event))

    # --- views ------------------------------------------------------------------------------

    def settable(self, thing_id: int) -> bool:
        """Whether people and recipes may set this thing (it exists and is not measured)."""
        return thing_id in self.things and thing_id not in MEASURED

    def _shown(self, thing: Thing) -> str:
        if thing.type == ThingType.SWITCH:
            return "on" if thing.value == ON else "off"
        return format_number(thing.value)

    def wire_text(self, thing: Thing, wall: float) -> str:
        """A thing's value as it travels on the mesh (a CLOCK as the time of day)."""
        if thing.type == ThingType.CLOCK:
            return format_clock(datetime.fromtimestamp(wall))
        return format_number(thing.value)

    def datagram(self, wall: float) -> bytes:
        """This node's broadcast, in the firmware's format (signed when there is a mesh key)."""
        data = encode(self.node_id, self.node_name,
                      [(t.id, self.wire_text(t, wall)) for t in self.things.values()
                       if t.id not in self.invalid])
        return data if self.signer is None else self.signer.sign(data)

    def names_datagram(self, wall: float) -> bytes:
        """This node's names datagram (plugd.core.wire.encode_names): what its things are, for
        other plugd nodes; signed like every datagram when there is a mesh key."""
        data = encode_names(self.node_id, self.node_name,
                            [(t.id, own_label(t.id, t.name, t.type)) for t in self.things.values()])
        return data if self.signer is None else self.signer.sign(data)

    def things_json(self) -> list[dict[str, Any]]:
        """The things as stored; `things_view` adds what clients are shown."""
        return [t.to_json() for t in self.things.values()]

    def things_view(self) -> list[dict[str, Any]]:
        """The things with whether each value is valid (a failed sensor's are not)."""
        return [{**t.to_json(), "valid": t.id not in self.invalid,
                 **self.shown(self.node_id, t.id).to_json()} for t in self.things.values()]
