"""Lua scripts behind :mod:`schemas.ledger`.

Each script is one atomic step of a job's life, so that no interleaving of producers, workers and
ops commands can give a job two outcomes, ring a number twice or lose a claim. Keys passed as the
empty string are absent (Redis Cluster is not supported: a job's keys span hash slots).
"""

from __future__ import annotations

from schemas.bucket import GCRA_RESERVE

ADMIT = (
    GCRA_RESERVE
    + """
-- KEYS: record, idem ('' if none), claim ('' to skip line+number dedupe), arq job, arq queue,
--       plan bucket ('' unless the job is due now), pause
-- ARGV: job_id, job_json, run_at_ms, arq_payload, claim_ttl_ms, arq_job_id, now_ms, interval_ms,
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

FINALIZE = """
-- KEYS: record, claim (''), idem (''), outcomes, dead index, arq job, arq queue,
--       portal's rate-refusal strikes ('': none; a success ends a run of refusals)
-- ARGV: job_id, status, outcome_json, retention_ms, outcomes_maxlen, dedupe_window_ms, now_ms,
--       arq_job_id, allowed ('*' any pending state, 'new' record must not exist, else csv),
--       job_json (for 'new'), attempts (for 'new'), attempt field (''), attempt entry
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
end
local status = ARGV[2]
redis.call('HSET', KEYS[1], 'state', status, 'outcome', ARGV[3], 'finished_at', ARGV[7])
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], ARGV[12], ARGV[13]) end
if status == 'succeeded' and KEYS[8] ~= '' then redis.call('DEL', KEYS[8]) end
redis.call('HDEL', KEYS[1], 'run_at')
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
if status == 'cancelled' then
  redis.call('ZREM', KEYS[7], ARGV[8])
  redis.call('DEL', KEYS[6])
end
return {'written', status}
"""

START = """
-- KEYS: record, portal halt, portal rate pause
-- ARGV: now_ms, attempt_json
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '0'} end
if state == 'scheduled' or state == 'retrying' then
  -- a halted or paused portal sends nothing, not even for a slot reserved before the pause began
  local halted = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]))
  if halted > 0 then return {'halted', tostring(halted)} end
  local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'state', 'running', 'attempt:' .. n, ARGV[2])
  redis.call('HDEL', KEYS[1], 'run_at', 'slots')
  return {'started', tostring(n)}
end
local n = redis.call('HGET', KEYS[1], 'attempts') or '0'
if state == 'running' then return {'interrupted', n} end
return {'final', state}
"""

RESCHEDULE = """
-- KEYS: record
-- ARGV: new_state, run_at_ms, allowed csv, extra field name (''), extra value
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if not string.find(',' .. ARGV[3] .. ',', ',' .. state .. ',', 1, true) then return state end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'run_at', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[5]) end
return 'ok'
"""

RELEASE_UNSTARTED = """
-- KEYS: record, arq in-progress
-- a job this process had picked but not started (no request sent): let any worker take it now
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'scheduled' or state == 'retrying' then return redis.call('DEL', KEYS[2]) end
return 0
"""
