-- uses: _gcra, _replayed
-- ADMIT (step admit, and replay): store a new job, ``scheduled``, and put it in arq's queue, unless
-- its idempotency key or its line + number is taken. A replay also marks the dead job it replays.
-- KEYS: record, idem ('' if none), claim ('' to skip line+number dedupe), '' (was arq's job key), arq queue,
--       plan bucket ('' unless the job is due now), pause, replayed record ('' unless a replay),
--       dead index, the portal's scheduled index, the portal's dead index
-- ARGV: job_id, job_json ('': the job is in the field pairs at the end), run_at_ms, '' (was the stored arq job), claim_ttl_ms, queue member, now_ms, interval_ms,
--       tolerance_ms, precise_ms, early_wake_ms, deadline_ms, take_key ('1': a replay takes the
--       idempotency key over from the dead job it replays), replayed job id, retention_ms, then the
--       job's record fields (name, value, ...: CallbackJob.to_fields, small values in Redis's compact
--       encoding)
-- Returns {verdict, job id}: 'new' (this job), 'idempotent' (the job holding the key, or this job
-- admitted before: a redelivered intake entry), 'duplicate' (the job holding the line + number),
-- 'refused' (the replayed job, and why not).
if KEYS[8] ~= '' then
  local why = replay_refused(KEYS[8])
  if why then return {'refused', why} end
end
-- a job id that exists already is a redelivered intake entry: the same job, not a new one
if redis.call('EXISTS', KEYS[1]) == 1 then return {'idempotent', ARGV[1]} end
if not can('admit', S.NEW, S.SCHEDULED) then return {'refused', 'admit'} end
if KEYS[2] ~= '' and ARGV[13] ~= '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder then return {'idempotent', holder} end
end
if KEYS[3] ~= '' then
  local holder = redis.call('GET', KEYS[3])
  -- a replay that is a duplicate is marked when its duplicate outcome is recorded (finalize.lua)
  if holder and holder ~= ARGV[1] then return {'duplicate', holder} end
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
end
if KEYS[8] ~= '' then
  mark_replayed(KEYS[8], KEYS[9], ARGV[14], ARGV[1], ARGV[15])
  redis.call('ZREM', KEYS[11], ARGV[14])
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
local run_at = tonumber(ARGV[3])
-- attempts starts absent (0) and created_at is in the job: fewer fields, a smaller record
redis.call('HSET', KEYS[1], 'state', S.SCHEDULED, unpack(ARGV, 16))
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'job', ARGV[2]) end
if KEYS[6] ~= '' then
  -- due on arrival: wake when the portal's plan says its turn comes, so that a bulk enqueue
  -- waits in the queue rather than passing through the workers to be put back
  local slot = tonumber(ARGV[7]) + reserve(KEYS[6], KEYS[7], tonumber(ARGV[8]), tonumber(ARGV[9]))
  if slot - tonumber(ARGV[7]) > tonumber(ARGV[10]) then
    run_at = math.min(slot - tonumber(ARGV[11]), tonumber(ARGV[12]))
  end
end
-- no run_at field: the queue's score says it (RecordReader.read asks it), 20 bytes less per job.
-- no arq job key: the worker runs callq's jobs from their queue entry alone (schemas.jobqueue.lane),
-- which leaves with the job's final outcome. Without a TTL anywhere, a job is never dropped without
-- an outcome (workers down for long): run late, it is 'expired'.
redis.call('ZADD', KEYS[5], run_at, ARGV[6])
redis.call('ZADD', KEYS[10], run_at, ARGV[1])
return {'new', ARGV[1]}
