-- uses: _now
-- REDIAL_START (call step redial_start): record that a redial's request is about to be sent, as a
-- new attempt of the job; the call says ``dialling``, with a lease in the dialling set, until the
-- request's result is written. Nothing is sent for a halted or paused portal.
-- KEYS: record, portal halt, portal rate pause, dialling leases
-- ARGV: job_id, attempt entry JSON, lease_ms, token (random, one per call)
-- Returns {'started', n} | {'halted', ms} | {'busy', n} (dialling, its lease alive) |
-- {'interrupted', n} (dialling, its lease lapsed) | {'final', state or call state}.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= S.SUCCEEDED then return {'final', state or 'missing'} end
local call = redis.call('HGET', KEYS[1], 'call') or C.NONE
local n = redis.call('HGET', KEYS[1], 'attempts') or '0'
if call == C.DIALLING then
  if redis.call('HGET', KEYS[1], 'call_lease') == ARGV[4] then return {'started', n} end
  local lease = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if lease and tonumber(lease) > redis_now() then return {'busy', n} end
  return {'interrupted', n}
end
if not call_can('redial_start', call, C.DIALLING) then return {'final', call} end
local halted = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]))
if halted > 0 then return {'halted', tostring(halted)} end
n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HINCRBY', KEYS[1], 'redials', 1)
redis.call('HSET', KEYS[1], 'call', C.DIALLING, 'attempt:' .. n, ARGV[2], 'call_lease', ARGV[4])
redis.call('HDEL', KEYS[1], 'run_at', 'slots')
redis.call('ZADD', KEYS[4], redis_now() + tonumber(ARGV[3]), ARGV[1])
return {'started', tostring(n)}
