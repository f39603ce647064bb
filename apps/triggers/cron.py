"""Cron arithmetic for schedules, pure (no ORM): validation and "the next tick after t" in a timezone.

Ticks are computed on the wall clock of the schedule's zone and converted to UTC, so "0 9 * * *" in
Europe/Berlin is 08:00 UTC in winter and 07:00 UTC in summer. Around DST changes:

* a wall time that does not exist (spring forward) fires once, shifted forward by the gap
  (PEP 495 ``fold=0``: 02:30 on the Berlin spring-forward day is 03:30 CEST);
* a wall time that happens twice (fall back) fires at its first occurrence only, unless the hour
  field is a wildcard ("*", "*/2", ...), whose jobs fire in both occurrences — Vixie cron's rule.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter

MSG_CRON_FIELDS = "A cron expression has five fields: minute hour day-of-month month day-of-week."
MSG_CRON_INVALID = "Not a valid cron expression: {error}."
MSG_CRON_NEVER = "This cron expression never fires."
MSG_TIMEZONE = "Unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'."

# The largest shift of a wall clock against UTC in one transition we account for (DST is 1-2 h).
_MAX_SHIFT = timedelta(hours=3)


class CronInvalid(ValueError):
    """A cron expression or timezone that cannot be scheduled; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called ``name``, or :class:`CronInvalid` (only names from the tz database pass)."""
    if name not in _zone_names() and name != "UTC":
        raise CronInvalid("timezone", MSG_TIMEZONE.format(name=name))
    return zoneinfo.ZoneInfo(name)


def validate(expr: str, tz: str) -> str:
    """The normalized expression (single spaces) if it is a schedulable 5-field cron in zone ``tz``."""
    zone(tz)
    fields = expr.split()
    if len(fields) != 5:
        raise CronInvalid("cron", MSG_CRON_FIELDS)
    normalized = " ".join(fields)
    try:
        if not croniter.is_valid(normalized):
            raise CronInvalid("cron", MSG_CRON_INVALID.format(error="a field is out of range or malformed"))
        croniter(normalized, datetime(2000, 1, 1)).get_next(datetime)
    except CronInvalid:
        raise
    except CroniterError as exc:
        error = str(exc) or type(exc).__name__
        message = MSG_CRON_NEVER if "find next" in error else MSG_CRON_INVALID.format(error=error)
        raise CronInvalid("cron", message) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CronInvalid("cron", MSG_CRON_INVALID.format(error=exc)) from None
    return normalized


def _instants(wall: datetime, tz: zoneinfo.ZoneInfo, repeat_folds: bool) -> Iterator[datetime]:
    """The UTC instants at which the naive wall time ``wall`` happens in ``tz`` (0 is never returned)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    yield first
    if first == second:
        return
    exists = first.astimezone(tz).replace(tzinfo=None) == wall
    if exists and repeat_folds:  # an ambiguous time (fall back): its second occurrence
        yield second


def next_after(expr: str, tz: str, after: datetime) -> datetime:
    """The first tick of ``expr`` in zone ``tz`` strictly after ``after`` (aware), as a UTC datetime."""
    local_zone = zone(tz)
    if after.tzinfo is None:
        raise ValueError("next_after needs an aware datetime")
    after = after.astimezone(UTC)
    wall_now = after.astimezone(local_zone).replace(tzinfo=None)
    try:
        wall = croniter(expr, wall_now).get_next(datetime)
    except CroniterError:
        raise CronInvalid("cron", MSG_CRON_NEVER) from None
    candidate = wall.replace(tzinfo=local_zone).astimezone(UTC)
    # No offset change near either end: wall time maps to UTC one-to-one and in order, so the first
    # wall tick after "now" is the answer (the usual case, one croniter step).
    probes = (after - _MAX_SHIFT, after + _MAX_SHIFT, candidate - _MAX_SHIFT, candidate + _MAX_SHIFT)
    if candidate > after and len({p.astimezone(local_zone).utcoffset() for p in probes}) == 1:
        return candidate
    return _next_near_transition(expr, local_zone, after, wall_now)


def _next_near_transition(expr: str, tz: zoneinfo.ZoneInfo, after: datetime, wall_now: datetime) -> datetime:
    """The slow path near a DST change: the earliest instant over every wall tick that can map after."""
    repeat_folds = expr.split()[1].startswith("*")
    # Start early: around a change, a wall time "before" now can still be ahead of now in UTC.
    ticks = croniter(expr, wall_now - _MAX_SHIFT)
    best: datetime | None = None
    horizon: datetime | None = None
    while True:
        try:
            wall = ticks.get_next(datetime)
        except CroniterError:
            if best is not None:
                return best
            raise CronInvalid("cron", MSG_CRON_NEVER) from None
        if best is not None and horizon is not None and wall > horizon:
            return best
        for instant in _instants(wall, tz, repeat_folds):
            if instant > after and (best is None or instant < best):
                best = instant
                if horizon is None:
                    # A later wall time maps to an earlier instant only within one shift of the clock.
                    horizon = wall + 2 * _MAX_SHIFT
