-- uses: _orphaned, _portal
-- RESCHEDULE (step put_back): put a job back to wait until ``run_at``. The put-back owns the job's
-- place in arq's queue: its score is set here, absolutely, in the same step as the state (arq is
-- then told to retry without moving it).
-- KEYS: record, running index, arq queue, '' (was arq's job key), held set, portal halt, portal rate pause
--       (the last three '' unless the job waits out the portal's halt or pause)
-- ARGV: job_id, new_state, run_at_ms, expected states (csv), queue member, '' (was the stored arq job),
--       held_ttl_ms, orphan guard ('' or the Redis ms the lease was seen lapsed), stale_ms,
--       owner ('' or the lease token of the attempt whose worker puts it back), scheduled index
--       prefix ('{p}:sched:'), then field/value pairs to set
-- Returns {'ok', run_at} | {'busy', state} | {'superseded', state} (the owner's attempt was judged
-- orphaned and another started since) | {'refused', state} | {'missing', ''} | {state, ''} (not in
-- an expected state).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if not in_csv(ARGV[4], state) then return {state, ''} end
if not can('put_back', state, ARGV[2]) then return {'refused', state} end
if ARGV[8] ~= '' and not orphaned(KEYS[2], ARGV[1], ARGV[8], ARGV[9]) then return {'busy', state} end
if ARGV[10] ~= '' and redis.call('HGET', KEYS[1], 'lease') ~= ARGV[10] then return {'superseded', state} end
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
for i = 12, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], run_at, ARGV[5])
local portal = job_portal(KEYS[1])
if portal then redis.call('ZADD', ARGV[11] .. portal, run_at, ARGV[1]) end
return {'ok', run_at}
