"""The event log: identical events summarised, noise never pushing out what matters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plugd.core.events import IMPORTANT, IMPORTANT_KEPT, NOISE_KEPT, Event, EventLog

#: Noise is every kind outside the important set, the usual ones and any other.
NOISY = ["auth", "node", "mqtt", ""]
KINDS = sorted(IMPORTANT) + NOISY


def event(t: int, kind: str = "relay", subject: str = "relay", message: str = "relay on",
          cause: str = "user 10.0.0.2") -> Event:
    return Event(time=t, kind=kind, subject=subject, message=message, cause=cause)


def failed_login(t: int, address: str) -> Event:
    """A failed login as the API records it: the same event whatever the address."""
    return Event(time=t, kind="auth", subject="login", message="failed login",
                 cause=f"user {address}")


def test_a_single_event_was_last_seen_when_it_happened() -> None:
    assert event(5).last == 5
    assert event(-3).last == -3  # a clock still at 1970 gives times before 2000
    assert event(5).to_json() == {"time": 5, "kind": "relay", "subject": "relay",
                                  "message": "relay on", "cause": "user 10.0.0.2", "count": 1,
                                  "last": 5}


def test_a_storm_of_failed_logins_from_many_addresses_is_one_line() -> None:
    log = EventLog()
    stored = [log.add(failed_login(t, f"10.0.{t % 7}.{t % 50}")) for t in range(200)]
    (line,) = list(log)
    assert line == stored[-1]
    assert (line.count, line.time, line.last, line.cause) == (200, 0, 199, "user 10.0.3.49")
    assert line.to_json() == {"time": 0, "kind": "auth", "subject": "login",
                              "message": "failed login", "cause": "user 10.0.3.49", "count": 200,
                              "last": 199}


def test_repeats_before_2000_are_counted_from_their_own_times() -> None:
    log = EventLog()
    log.add(event(-100))
    line = log.add(event(-40))
    assert (line.count, line.time, line.last) == (2, -100, -40)


def test_different_messages_or_subjects_are_never_merged() -> None:
    log = EventLog()
    log.add(event(1, message="relay on"))
    log.add(event(2, message="relay off"))
    log.add(event(3, message="relay on"))  # after an off: the on repeats, at its latest time
    log.add(event(4, "node", "node 1", "node A online"))
    log.add(event(5, "node", "node 2", "node A online"))
    log.add(event(6, "thing", "node 2", "node A online"))  # another kind
    assert [(e.kind, e.message, e.subject, e.count) for e in log] == [
        ("relay", "relay off", "relay", 1), ("relay", "relay on", "relay", 2),
        ("node", "node A online", "node 1", 1), ("node", "node A online", "node 2", 1),
        ("thing", "node A online", "node 2", 1)]


def test_an_old_event_is_not_a_repeat() -> None:
    log = EventLog(repeat_window=60)
    log.add(event(0))
    log.add(event(60))  # 60 s after the first: a repeat
    log.add(event(121))  # 61 s after the latest: a line of its own
    assert [(e.count, e.time, e.last) for e in log] == [(2, 0, 60), (1, 121, 121)]


def test_a_storm_of_failed_logins_never_pushes_out_relay_and_recipe_events() -> None:
    log = EventLog()
    kept = [log.add(event(t, kind, f"{kind} {t}", f"{kind} {t}"))
            for t, kind in enumerate(sorted(IMPORTANT))]
    for t in range(10_000):
        log.add(event(100 + t, "auth", f"login {t}", f"failed login {t}"))  # not even identical
    assert [e for e in log if e.kind in IMPORTANT] == kept
    assert len(log) == len(kept) + NOISE_KEPT and log[-1].message == "failed login 9999"


def test_the_default_bounds() -> None:
    log = EventLog()
    for t in range(1000):
        log.add(event(t, "relay", "relay", f"relay {t}"))
        log.add(event(t, "node", f"node {t}", "node online"))
    assert len(log) == IMPORTANT_KEPT + NOISE_KEPT == 300


steps = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, 3),
                           st.integers(0, 30)), max_size=400)


@given(steps)
def test_bounded_ordered_and_counting_every_event(
        steps: list[tuple[str, int, int, int]]) -> None:
    log = EventLog(important=20, noise=10, repeat_window=50)
    t = 0
    added = 0
    for kind, subject, message, gap in steps:
        t += gap
        stored = log.add(event(t, kind, f"s{subject}", f"m{message}"))
        added += 1
        assert stored.last == t and log[-1] == stored
        important = [e for e in log if e.kind in IMPORTANT]
        assert len(important) <= 20 and len(log) - len(important) <= 10
        lasts = [e.last for e in log]
        assert lasts == sorted(lasts)  # time order, a repeat counting from its latest
        keys = [(e.kind, e.subject, e.message) for e in log if t - e.last <= 50]
        assert len(keys) == len(set(keys))  # no two recent lines are identical
    assert sum(e.count for e in log) <= added


@given(st.lists(st.tuples(st.sampled_from(NOISY), st.integers(0, 5)), max_size=300),
       st.lists(st.sampled_from(sorted(IMPORTANT)), min_size=1, max_size=20))
def test_noise_never_evicts_an_important_event_within_its_quota(
        noise: list[tuple[str, int]], important: list[str]) -> None:
    log = EventLog(important=20, noise=10)
    kept = [log.add(event(i, kind, f"x{i}", f"y{i}")) for i, kind in enumerate(important)]
    for i, (kind, which) in enumerate(noise):
        log.add(event(100 + i, kind, f"n{which}", "noise"))
    assert [e for e in log if e.kind in IMPORTANT] == kept
    assert len(log) <= len(kept) + 10


@given(steps)
def test_every_event_is_counted_once_and_only_under_its_own_kind_subject_and_message(
        steps: list[tuple[str, int, int, int]]) -> None:
    log = EventLog(important=len(steps) + 1, noise=len(steps) + 1, repeat_window=50)
    added: dict[tuple[str, str, str], int] = {}
    t = 0
    for kind, subject, message, gap in steps:
        t += gap
        log.add(event(t, kind, f"s{subject}", f"m{message}", cause=f"c{t}"))
        key = (kind, f"s{subject}", f"m{message}")
        added[key] = added.get(key, 0) + 1
    counted: dict[tuple[str, str, str], int] = {}
    for e in log:
        key = (e.kind, e.subject, e.message)
        counted[key] = counted.get(key, 0) + e.count
        assert e.cause == f"c{e.last}"  # the newest cause is kept
    assert counted == added


@given(st.lists(st.integers(0, 3_599), min_size=1, max_size=300))
def test_identical_events_within_the_window_collapse_to_one_line(gaps: list[int]) -> None:
    log = EventLog(repeat_window=3600)
    t = 0
    for gap in gaps:
        t += gap
        log.add(failed_login(t, f"10.0.0.{gap % 256}"))
    (line,) = list(log)
    assert (line.count, line.time, line.last) == (len(gaps), gaps[0], t)
