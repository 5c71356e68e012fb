-- uses: _now
-- START (step start): record that a request is about to be sent; the record says ``running``, with a
-- lease in the running index, until the attempt ends. Nothing is sent for a halted or paused portal.
-- KEYS: record, portal halt, portal rate pause, running index, arq queue, the portal's scheduled index
-- ARGV: job_id, attempt_json, lease_ms, queue member, attempt token (random, one per START call)
-- Returns {'started', n} | {'halted', ms left} | {'busy', n, redis ms} (its worker keeps its lease
-- alive: the queue entry moves to when the lease would lapse) | {'interrupted', n, redis ms} (the
-- lease lapsed: nobody may work on it any more) | {'final', state} | {'missing', '0'}.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '0'} end
if can('start', state, S.RUNNING) then
  -- a halted or paused portal sends nothing, not even for a slot reserved before the pause began
  local halted = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]))
  if halted > 0 then return {'halted', tostring(halted)} end
  local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'state', S.RUNNING, 'attempt:' .. n, ARGV[2], 'lease', ARGV[5])
  redis.call('HDEL', KEYS[1], 'run_at', 'slots')
  -- the attempt's lease: the worker running it keeps it alive; once it lapses, nobody does
  redis.call('ZADD', KEYS[4], redis_now() + tonumber(ARGV[3]), ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
  return {'started', tostring(n)}
end
local n = redis.call('HGET', KEYS[1], 'attempts') or '0'
if state == S.RUNNING then
  -- the same call again (redis-py re-sends a command whose reply a dropped connection lost):
  -- the attempt it started is still this caller's, and nothing has been sent yet
  if redis.call('HGET', KEYS[1], 'lease') == ARGV[5] then return {'started', n} end
  local now = redis_now()
  local lease = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if lease and tonumber(lease) > now then
    redis.call('ZADD', KEYS[5], 'XX', lease, ARGV[4])
    return {'busy', n, tostring(now)}
  end
  return {'interrupted', n, tostring(now)}
end
return {'final', state}
