"""Rate limits kept in Redis: one key per limited job name (:func:`.keys.rate_key`), in the
Redis of ``DEFAULT_QUEUE`` whatever queue a job is on, so that every worker of every queue
shares the limit.

The limit is a sliding window in one Lua script, run by its SHA: the key is a sorted set of
the starts of the last ``period``, scored in microseconds of the Redis server's clock (so the
workers' clocks do not matter). A start is allowed while fewer than ``count`` are in the window
``(now - period, now]``; else the wait is until the oldest leaves it. So in no window of
``period`` seconds do more than ``count`` start, and a burst of ``count`` is allowed (a token
bucket or GCRA would let up to ``2 * count - 1`` start in the first window). The set holds at
most ``count`` members and expires a second after its last start leaves the window.
"""

from __future__ import annotations

from redis import Redis

from . import keys
from .connections import script

#: KEYS the limits' keys; ARGV, for each key, the count and the period in microseconds.
#: Returns 0 (start now: the start counted against every limit) or the microseconds until all
#: of them would allow one (then nothing is counted). A value someone wrote into a key that is
#: not ours (another type) is dropped, not fatal: the window starts empty; a start dated after
#: now (not ours, or a clock that stepped back) counts from now, so no wait exceeds a period.
RATE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local wait = 0
for i, key in ipairs(KEYS) do
    local count = tonumber(ARGV[2 * i - 1])
    local period = tonumber(ARGV[2 * i])
    local trimmed = redis.pcall('ZREMRANGEBYSCORE', key, '-inf', now - period)
    if type(trimmed) == 'table' and trimmed.err then
        redis.call('DEL', key)
    else
        for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, string.format('(%d', now), '+inf')) do
            redis.call('ZADD', key, now, member)
        end
    end
    if redis.call('ZCARD', key) >= count then
        local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        local allowed_at = tonumber(oldest[2]) + period + 1
        if allowed_at - now > wait then wait = allowed_at - now end
    end
end
if wait > 0 then return math.ceil(wait) end
for i, key in ipairs(KEYS) do
    local period = tonumber(ARGV[2 * i])
    redis.call('ZADD', key, now, string.format('%d-%d', now, redis.call('ZCARD', key)))
    redis.call('PEXPIRE', key, math.ceil(period / 1000) + 1000)
end
return 0
"""

#: ``(count, period in seconds)``.
Rate = tuple[int, float]


def rate_wait(
    connection: Redis, *, job: tuple[str, Rate] | None = None, queue: tuple[str, Rate] | None = None
) -> float:
    """Count a start against the rate of job ``job[0]`` and of queue ``queue[0]`` (either may be
    left out): 0.0 if it may start now (then it is counted), else the seconds until it may."""
    limits = []
    if job is not None:
        limits.append((keys.rate_key(job[0]), job[1]))
    if queue is not None:
        limits.append((keys.queue_rate_key(queue[0]), queue[1]))
    if not limits:
        return 0.0
    args: list[int] = []
    for _, (count, period) in limits:
        args += [count, max(1, round(period * 1_000_000))]
    waited = script(connection, RATE_SCRIPT)(keys=[key for key, _ in limits], args=args)
    return int(waited) / 1_000_000


#: KEYS[1] the running set of a job name (and key); ARGV[1] the job id, ARGV[2] the limit,
#: ARGV[3] the lease in microseconds. 1: the job holds a slot (it may run), 0: all are taken.
#: A slot whose lease ran out (its worker died) is free again; the same job asking again (a
#: retry, a recovered attempt) keeps its own. A key of another type (not ours) is dropped; a
#: slot leased beyond the lease given now (not ours) is held for that lease at most.
SLOT_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lease = tonumber(ARGV[3])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now + lease), '+inf')) do
    redis.call('ZADD', KEYS[1], now + lease, member)
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
    redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1000)
    return 1
end
return 0
"""


def take_slot(connection: Redis, key: str, job_id: str, limit: int, lease: float) -> bool:
    """Whether job ``job_id`` may run: it holds one of ``limit`` slots of ``key`` for at most
    ``lease`` seconds (then the slot is free again, as for a worker that died)."""
    lease_us = max(1, round(lease * 1_000_000))
    return bool(script(connection, SLOT_SCRIPT)(keys=[keys.running_key(key)], args=[job_id, limit, lease_us]))


def free_slot(connection: Redis, key: str, job_id: str) -> None:
    connection.zrem(keys.running_key(key), job_id)
