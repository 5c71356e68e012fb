-- uses: _now
-- HEARTBEAT: keep the leases of this worker's attempts alive (never re-adds one that left the
-- index: an attempt judged orphaned stays ended), and its liveness key.
-- KEYS: running index, this worker's liveness key
-- ARGV: lease_ms, liveness_ttl_ms, job ids whose attempts this worker runs...
-- Returns {redis ms, then 1 or 0 for each job id: its lease was renewed}.
local now = redis_now()
redis.call('SET', KEYS[2], tostring(now), 'PX', ARGV[2])
local reply = {now}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
    reply[#reply + 1] = 1
  else
    reply[#reply + 1] = 0
  end
end
return reply
