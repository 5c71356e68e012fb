-- PAUSE_UNTIL: pause the portal's callbacks for ARGV[2] ms (callback.start's execution-time budget
-- frees up then), unless a longer pause is already on. The pause's value says why (ARGV[1]).
-- KEYS: pause. Returns the pause in force, in ms.
local current = redis.call('PTTL', KEYS[1])
local wanted = tonumber(ARGV[2])
if current >= wanted then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', wanted)
return wanted
