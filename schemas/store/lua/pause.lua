-- uses: _now
-- PAUSE: Bitrix24 refused a request for the portal's limits: pause the portal for every worker,
-- doubling with each refusal in a row (one strike per pause: requests sent before the pause began
-- come back refused during it), and assume the bucket full afterwards (the steady rate, no burst).
-- KEYS: bucket (tat), pause, strikes; ARGV: tolerance_ms, base_pause_ms, max_pause_ms.
-- Returns the pause in ms.
local now = redis_now()
local current = redis.call('PTTL', KEYS[2])
if current > 0 then return current end
local strikes = redis.call('INCR', KEYS[3])
local pause = math.min(tonumber(ARGV[2]) * 2 ^ (strikes - 1), tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[3], math.floor(pause * 4 + 60000))
redis.call('SET', KEYS[2], '1', 'PX', math.floor(pause))
local tat = now + pause + tonumber(ARGV[1])
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if old < tat then redis.call('SET', KEYS[1], tostring(tat), 'PX', math.floor(tat - now + 1000)) end
return math.floor(pause)
