"""Lua scripts behind :mod:`schemas.store.ledger`.

Each script is one atomic step of a job's life, so that no interleaving of producers, workers and
ops commands can give a job two outcomes, ring a number twice or lose a claim. Keys passed as the
empty string are absent (Redis Cluster is not supported: a job's keys span hash slots).
"""

from __future__ import annotations

from schemas.policy.bucket import GCRA_RESERVE

ADMIT = (
    GCRA_RESERVE
    + """
-- KEYS: record, idem ('' if none), claim ('' to skip line+number dedupe), arq job, arq queue,
--       plan bucket ('' unless the job is due now), pause
-- ARGV: job_id, job_json, run_at_ms, stored_job, claim_ttl_ms, arq_job_id, now_ms, interval_ms,
--       tolerance_ms, precise_ms, early_wake_ms, deadline_ms, take_key ('1': a replay takes the
--       idempotency key over from the dead job it replays)
-- a job id that exists already is a redelivered intake entry: the same job, not a new one
if redis.call('EXISTS', KEYS[1]) == 1 then return {'idempotent', ARGV[1]} end
if KEYS[2] ~= '' and ARGV[13] ~= '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder then return {'idempotent', holder} end
end
if KEYS[3] ~= '' then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= ARGV[1] then return {'duplicate', holder} end
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
local run_at = tonumber(ARGV[3])
-- attempts starts absent (0) and created_at is in the job: fewer fields, a smaller record
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'state', 'scheduled')
if KEYS[6] ~= '' then
  -- due on arrival: wake when the portal's plan says its turn comes, so that a bulk enqueue
  -- waits in the queue rather than passing through the workers to be put back
  local slot = tonumber(ARGV[7]) + reserve(KEYS[6], KEYS[7], tonumber(ARGV[8]), tonumber(ARGV[9]))
  if slot - tonumber(ARGV[7]) > tonumber(ARGV[10]) then
    run_at = math.min(slot - tonumber(ARGV[11]), tonumber(ARGV[12]))
  end
end
redis.call('HSET', KEYS[1], 'run_at', string.format('%d', run_at))
-- no TTL: arq's job key leaves with its queue entry when the job runs or is cancelled. A TTL
-- could only drop a job without an outcome (workers down past it); run late, it is 'expired'.
redis.call('SET', KEYS[4], ARGV[4])
redis.call('ZADD', KEYS[5], run_at, ARGV[6])
return {'new', ARGV[1]}
"""
)

REDIS_NOW = """
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

ORPHAN_GUARD = (
    REDIS_NOW
    + """
-- orphaned(running_key, job_id, seen_ms, stale_ms): nobody works on the job's attempt any more.
-- Its lease (kept alive by the worker that runs it) lapsed, and this command was not held up by a
-- stalled Redis since the caller saw it lapse (``seen_ms``, Redis time): after a stall the owner's
-- own writes, queued behind it, may be about to land, and they win.
local function orphaned(running_key, job_id, seen_ms, stale_ms)
  local now = redis_now()
  if now - tonumber(seen_ms) > tonumber(stale_ms) then return false end
  local lease = redis.call('ZSCORE', running_key, job_id)
  return (not lease) or tonumber(lease) <= now
end
"""
)

FINALIZE = (
    ORPHAN_GUARD
    + """
-- KEYS: record, claim (''), idem (''), outcomes, dead index, arq job, arq queue,
--       portal's rate-refusal strikes ('': none; a success ends a run of refusals), running index
-- ARGV: job_id, status, outcome_json, retention_ms, outcomes_maxlen, dedupe_window_ms, now_ms,
--       arq_job_id, allowed ('*' any pending state, 'new' record must not exist, else csv),
--       job_json (for 'new'), attempts (for 'new'), attempt field (''), attempt entry,
--       drop_arq ('1': remove the arq job and its queue entry), orphan guard ('': none, else the
--       Redis ms at which the caller saw the lease lapse), stale_ms
local state = redis.call('HGET', KEYS[1], 'state')
local allowed = ARGV[9]
if allowed == 'new' then
  if state then return {'exists', state} end
  redis.call('HSET', KEYS[1], 'job', ARGV[10], 'attempts', ARGV[11], 'created_at', ARGV[7])
else
  if not state then return {'missing', ''} end
  if state ~= 'scheduled' and state ~= 'running' and state ~= 'retrying' then
    return {'final', state}
  end
  if allowed ~= '*' and not string.find(',' .. allowed .. ',', ',' .. state .. ',', 1, true) then
    return {'busy', state}
  end
  if ARGV[15] ~= '' and not orphaned(KEYS[9], ARGV[1], ARGV[15], ARGV[16]) then
    return {'busy', state}
  end
end
local status = ARGV[2]
redis.call('HSET', KEYS[1], 'state', status, 'outcome', ARGV[3], 'finished_at', ARGV[7])
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], ARGV[12], ARGV[13]) end
if status == 'succeeded' and KEYS[8] ~= '' then redis.call('DEL', KEYS[8]) end
redis.call('HDEL', KEYS[1], 'run_at', 'lease')
if KEYS[9] ~= '' then redis.call('ZREM', KEYS[9], ARGV[1]) end
if status == 'dead' then
  -- dead letters stay until replayed or purged
  redis.call('PERSIST', KEYS[1])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'outcome', ARGV[3])
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  if status == 'succeeded' and tonumber(ARGV[6]) > 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  else
    redis.call('DEL', KEYS[2])
  end
end
if KEYS[3] ~= '' then
  if allowed == 'new' then redis.call('SET', KEYS[3], ARGV[1], 'NX') end
  if redis.call('GET', KEYS[3]) == ARGV[1] then
    if status == 'dead' then redis.call('PERSIST', KEYS[3]) else redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
  end
end
if ARGV[14] == '1' then
  redis.call('ZREM', KEYS[7], ARGV[8])
  redis.call('DEL', KEYS[6])
end
return {'written', status}
"""
)

START = (
    REDIS_NOW
    + """
-- KEYS: record, portal halt, portal rate pause, running index, arq queue
-- ARGV: job_id, attempt_json, lease_ms, arq_job_id, attempt token (random, one per START call)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '0'} end
if state == 'scheduled' or state == 'retrying' then
  -- a halted or paused portal sends nothing, not even for a slot reserved before the pause began
  local halted = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]))
  if halted > 0 then return {'halted', tostring(halted)} end
  local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'state', 'running', 'attempt:' .. n, ARGV[2], 'lease', ARGV[5])
  redis.call('HDEL', KEYS[1], 'run_at', 'slots')
  -- the attempt's lease: the worker running it keeps it alive; once it lapses, nobody does
  redis.call('ZADD', KEYS[4], redis_now() + tonumber(ARGV[3]), ARGV[1])
  return {'started', tostring(n)}
end
local n = redis.call('HGET', KEYS[1], 'attempts') or '0'
if state == 'running' then
  -- the same call again (redis-py re-sends a command whose reply a dropped connection lost):
  -- the attempt it started is still this caller's, and nothing has been sent yet
  if redis.call('HGET', KEYS[1], 'lease') == ARGV[5] then return {'started', n} end
  local now = redis_now()
  local lease = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if lease and tonumber(lease) > now then
    -- its worker is alive and still on it: look again once the lease would lapse
    redis.call('ZADD', KEYS[5], 'XX', lease, ARGV[4])
    return {'busy', n, tostring(now)}
  end
  return {'interrupted', n, tostring(now)}
end
return {'final', state}
"""
)

RESCHEDULE = (
    ORPHAN_GUARD
    + """
-- KEYS: record, running index, arq queue, arq job, held set, portal halt, portal rate pause
--       (the last three '' unless the job waits out the portal's halt or pause)
-- ARGV: job_id, new_state, run_at_ms, allowed csv, arq_job_id, stored_job, held_ttl_ms,
--       orphan guard ('' or the Redis ms the lease was seen lapsed), stale_ms, then field/value pairs
-- The put-back owns the job's place in arq's queue: its score is set here, absolutely, in the same
-- step as the state (arq is then told to retry without moving it).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if not string.find(',' .. ARGV[4] .. ',', ',' .. state .. ',', 1, true) then return state end
if ARGV[8] ~= '' and not orphaned(KEYS[2], ARGV[1], ARGV[8], ARGV[9]) then return 'busy' end
local run_at = ARGV[3]
if KEYS[5] ~= '' then
  if redis.call('PTTL', KEYS[6]) > 0 or redis.call('PTTL', KEYS[7]) > 0 then
    -- waits out the halt: `callq resume` wakes the jobs in the held set
    redis.call('SADD', KEYS[5], ARGV[1])
    redis.call('PEXPIRE', KEYS[5], ARGV[7])
  else
    -- lifted (`callq resume`) since the job saw it: do not wait for it
    run_at = string.format('%d', redis_now())
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'run_at', run_at)
redis.call('HDEL', KEYS[1], 'lease')
for i = 10, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], run_at, ARGV[5])
-- a job whose arq run was given up (a reconciled orphan) gets its arq job back
redis.call('SET', KEYS[4], ARGV[6], 'NX')
return 'ok'
"""
)

DEFER = (
    REDIS_NOW
    + """
-- KEYS: record, arq queue; ARGV: arq_job_id, delay_ms
-- An attempt still running elsewhere (or not yet judged): look at it again later.
if redis.call('HGET', KEYS[1], 'state') == 'running' then
  redis.call('ZADD', KEYS[2], 'XX', redis_now() + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
)

HEARTBEAT = (
    REDIS_NOW
    + """
-- KEYS: running index, this worker's liveness key
-- ARGV: lease_ms, liveness_ttl_ms, job ids whose attempts this worker runs...
-- Keeps the leases of this worker's attempts alive (never re-adds one that left the index).
local now = redis_now()
redis.call('SET', KEYS[2], tostring(now), 'PX', ARGV[2])
local renewed = 0
for i = 3, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return {now, renewed}
"""
)

FORGET_RUNNING = """
-- KEYS: record, running index; ARGV: job_id
-- an index entry left behind by a job that is no longer running (a record that expired, say)
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
"""

ORPHANS = (
    REDIS_NOW
    + """
-- KEYS: running index; ARGV: at most this many
-- Jobs whose attempt lease lapsed, with the Redis time they were seen at.
local now = redis_now()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
table.insert(ids, 1, tostring(now))
return ids
"""
)

RELEASE_UNSTARTED = """
-- KEYS: record, arq in-progress
-- a job this process had picked but not started (no request sent): let any worker take it now
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'scheduled' or state == 'retrying' then return redis.call('DEL', KEYS[2]) end
return 0
"""

RESUME = (
    REDIS_NOW
    + """
-- KEYS: portal halt, portal rate pause, the portal's held set, arq queue
-- ARGV: record key prefix ('{p}:job:'), arq job id prefix ('{p}:')
-- ``callq resume``: lift the halt and the pause, and wake every job put back to wait them out
-- (it runs now, or goes back to its own time if business hours or its slot say so).
local lifted = redis.call('DEL', KEYS[1], KEYS[2])
local now = redis_now()
local woken = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local record = ARGV[1] .. id
  local state = redis.call('HGET', record, 'state')
  if (state == 'scheduled' or state == 'retrying')
      and redis.call('ZADD', KEYS[4], 'XX', 'LT', 'CH', now, ARGV[2] .. id) == 1 then
    redis.call('HSET', record, 'run_at', string.format('%d', now))
    woken = woken + 1
  end
end
redis.call('DEL', KEYS[3])
return {lifted, woken}
"""
)
