-- uses: _now
-- RESERVE_SPARE: a slot of a portal's bucket at low priority (a call's follow-up): taken only if
-- it is free now and the bucket keeps ``keep_ms`` of its tolerance for callbacks afterwards; else
-- nothing is taken. The caller's ``keep_ms`` is half the tolerance but at most the tolerance less
-- one interval (schemas.store.calls.spare_keep_ms; negative for a bucket of depth 1), so the rule
-- is: a spare slot is taken only when after it at least one slot is left to callbacks, or the
-- bucket is otherwise idle (nothing reserved: ``tat <= now``); an idle bucket always lends one.
-- Callbacks reserve ahead (into the future), so a queue of callbacks leaves no spare slot at all:
-- a follow-up never makes a queued callback wait (a callback arriving at an idle depth-1 bucket
-- just after a spare slot waits at most one interval).
-- KEYS: bucket, pause; ARGV: interval_ms, tolerance_ms, keep_ms. Returns 0 (taken) or ms to wait.
local now = redis_now()
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return pause end
local interval, tolerance, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(tat, now)
local over = base + interval - now - (tolerance - keep)
if over > 0 then return math.floor(over) + 1 end
redis.call('SET', KEYS[1], tostring(base + interval), 'PX', math.floor(math.max(base + interval - now + 1000, 1000)))
return 0
