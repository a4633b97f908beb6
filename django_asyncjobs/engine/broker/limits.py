"""Rate limits kept in Redis: one key per limited job name (:func:`.keys.rate_key`), in the
Redis of ``DEFAULT_QUEUE`` whatever queue a job is on, so that every worker of every queue
shares the limit.

The limit is a generic cell rate algorithm (GCRA) in one Lua script, run by its SHA: the
key holds the "theoretical arrival time" of the next start, in microseconds of the Redis
server's clock (so the workers' clocks do not matter). ``count`` starts per ``period``
allow a burst of ``count``, and then one start every ``period / count``: in no window of
``period`` seconds do more than ``count`` start.
"""

from __future__ import annotations

from redis import Redis

from . import keys
from .connections import script

#: KEYS[1] the job name's key; ARGV[1] microseconds between starts (period / count), ARGV[2]
#: the period in microseconds. Returns 0 (start now, the start counted) or the microseconds
#: until a start would be allowed. A value someone wrote into the key that is not ours is
#: dropped, not fatal: the next start is counted from now.
RATE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local stored = redis.pcall('GET', KEYS[1])
if type(stored) == 'table' and stored.err then
    redis.call('DEL', KEYS[1])
    stored = false
end
local tat = tonumber(stored) or now
if tat < now then tat = now end
local allowed_at = tat + interval - period
if now < allowed_at then
    return math.ceil(allowed_at - now)
end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', math.ceil(period / 1000) + 1000)
return 0
"""


def rate_wait(connection: Redis, name: str, count: int, period: float) -> float:
    """Count a start of job ``name`` against ``count`` per ``period`` seconds: 0.0 if it may
    start now (then it is counted), else the seconds until it may."""
    period_us = max(1, round(period * 1_000_000))
    interval_us = max(1, period_us // count)
    waited = script(connection, RATE_SCRIPT)(keys=[keys.rate_key(name)], args=[interval_us, period_us])
    return int(waited) / 1_000_000
