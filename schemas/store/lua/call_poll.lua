-- CALL_POLL: the call has not ended yet (no statistics row): ask again at ARGV[3].
-- KEYS: record, calls schedule; ARGV: job_id, call_id, at_ms. Returns 1 if still awaited.
if redis.call('HGET', KEYS[1], 'call') ~= C.AWAITING or redis.call('HGET', KEYS[1], 'call_id') ~= ARGV[2] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('HINCRBY', KEYS[1], 'call_polls', 1)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
