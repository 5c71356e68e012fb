-- uses: _now
-- ORPHANS: jobs whose attempt lease lapsed, with the Redis time they were seen at.
-- KEYS: running index; ARGV: at most this many. Returns {redis ms, job ids...}.
local now = redis_now()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
table.insert(ids, 1, tostring(now))
return ids
