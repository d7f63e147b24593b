"""The event log: identical events summarised, noise never pushing out what matters."""

from hypothesis import given
from hypothesis import strategies as st

from plugd.core.events import IMPORTANT, Event, EventLog

NOISY = ["auth", "node"]


def event(t, kind="relay", subject="relay", message="relay on", cause="user 10.0.0.2"):
    return Event(time=t, kind=kind, subject=subject, message=message, cause=cause)


def test_identical_events_become_one_line_with_a_count_and_the_latest_cause():
    log = EventLog()
    for t in range(200):
        log.add(event(t, "auth", "login", "failed login", f"user 10.0.0.{t % 50}"))
    (line,) = list(log)
    assert (line.count, line.time, line.latest, line.cause) == (200, 0, 199, "user 10.0.0.49")
    assert line.to_json() == {"time": 0, "kind": "auth", "subject": "login", "message": "failed login",
                              "cause": "user 10.0.0.49", "count": 200, "last": 199}


def test_different_messages_or_subjects_are_never_merged():
    log = EventLog()
    log.add(event(1, message="relay on"))
    log.add(event(2, message="relay off"))
    log.add(event(3, message="relay on"))  # after an off: the on repeats, at its latest time
    log.add(event(4, "node", "node 1", "node A online"))
    log.add(event(5, "node", "node 2", "node A online"))
    assert [(e.message, e.subject, e.count) for e in log] == [
        ("relay off", "relay", 1), ("relay on", "relay", 2), ("node A online", "node 1", 1),
        ("node A online", "node 2", 1)]


def test_an_old_event_is_not_a_repeat():
    log = EventLog(repeat_window=60)
    log.add(event(0))
    log.add(event(61))
    assert [e.count for e in log] == [1, 1]


def test_a_storm_of_failed_logins_never_pushes_out_relay_and_recipe_events():
    log = EventLog()
    kept = [log.add(event(t, kind, f"{kind} {t}", f"{kind} {t}"))
            for t, kind in enumerate(sorted(IMPORTANT))]
    for t in range(10_000):
        log.add(event(100 + t, "auth", f"login {t}", f"failed login {t}"))  # not even identical
    assert [e for e in log if e.kind in IMPORTANT] == kept
    assert len(log) == len(kept) + 100 and log[-1].message == "failed login 9999"


events = st.lists(st.tuples(st.sampled_from(sorted(IMPORTANT) + NOISY), st.integers(0, 3),
                            st.integers(0, 3), st.integers(0, 30)), max_size=400)


@given(events)
def test_bounded_ordered_and_counting_every_event(steps):
    log = EventLog(important=20, noise=10, repeat_window=50)
    t = 0
    added = 0
    for kind, subject, message, gap in steps:
        t += gap
        stored = log.add(event(t, kind, f"s{subject}", f"m{message}"))
        added += 1
        assert stored.latest == t and log[-1] == stored
        important = [e for e in log if e.kind in IMPORTANT]
        assert len(important) <= 20 and len(log) - len(important) <= 10
        latests = [e.latest for e in log]
        assert latests == sorted(latests)  # time order, a repeat counting from its latest
        keys = [(e.kind, e.subject, e.message) for e in log if t - e.latest <= 50]
        assert len(keys) == len(set(keys))  # no two recent lines are identical
    assert sum(e.count for e in log) <= added


@given(st.lists(st.sampled_from(NOISY), max_size=300), st.lists(st.sampled_from(sorted(IMPORTANT)),
                                                                 min_size=1, max_size=20))
def test_noise_never_evicts_an_important_event_within_its_quota(noise, important):
    log = EventLog(important=20, noise=10)
    kept = [log.add(event(i, kind, f"x{i}", f"y{i}")) for i, kind in enumerate(important)]
    for i, kind in enumerate(noise):
        log.add(event(100 + i, kind, f"n{i}", f"n{i}"))
    assert [e for e in log if e.kind in IMPORTANT] == kept


@given(events)
def test_every_event_is_counted_once_and_only_under_its_own_kind_subject_and_message(steps):
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
        counted[(e.kind, e.subject, e.message)] = counted.get((e.kind, e.subject, e.message), 0) + e.count
        assert e.cause == f"c{e.latest}"  # the newest cause is kept
    assert counted == added
