-- uses: _now
-- CALLS_DUE: take the jobs whose call's end is due to be asked about (moving each one's score
-- ahead by claim_ms, so that one worker asks at a time), and the redials whose lease lapsed.
-- KEYS: calls schedule, dialling leases; ARGV: limit, claim_ms.
-- Returns {redis ms, n due, due ids..., lapsed ids...}.
local now = redis_now()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), id) end
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local reply = {tostring(now), tostring(#due)}
for _, id in ipairs(due) do reply[#reply + 1] = id end
for _, id in ipairs(lapsed) do reply[#reply + 1] = id end
return reply
