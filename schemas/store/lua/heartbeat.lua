-- uses: _now
-- HEARTBEAT: keep the leases of this worker's attempts alive (never re-adds one that left the
-- index), and its liveness key.
-- KEYS: running index, this worker's liveness key
-- ARGV: lease_ms, liveness_ttl_ms, job ids whose attempts this worker runs...
-- Returns {redis ms, leases renewed}.
local now = redis_now()
redis.call('SET', KEYS[2], tostring(now), 'PX', ARGV[2])
local renewed = 0
for i = 3, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return {now, renewed}
