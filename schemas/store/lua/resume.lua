-- uses: _now
-- RESUME (``callq resume``): lift a portal's halt and rate pause, and wake every job put back to
-- wait them out (it runs now, or goes back to its own time if business hours or its slot say so).
-- KEYS: portal halt, portal rate pause, the portal's held set, arq queue, the portal's scheduled index
-- ARGV: record key prefix ('{p}:job:'), queue member prefix ('{p}:'). Returns {lifted, woken}.
local lifted = redis.call('DEL', KEYS[1], KEYS[2])
local now = redis_now()
local woken = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local record = ARGV[1] .. id
  local state = redis.call('HGET', record, 'state')
  if state and can('start', state, S.RUNNING)
      and redis.call('ZADD', KEYS[4], 'XX', 'LT', 'CH', now, ARGV[2] .. id) == 1 then
    redis.call('HSET', record, 'run_at', string.format('%d', now))
    redis.call('ZADD', KEYS[5], 'XX', now, id)
    woken = woken + 1
  end
end
redis.call('DEL', KEYS[3])
return {lifted, woken}
