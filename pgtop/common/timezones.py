"""The names in the system's time zone database, which the core's timezone check hooks need
and must not read themselves (the core does no I/O): read once per process, as pg_tzset
caches what it loads."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
