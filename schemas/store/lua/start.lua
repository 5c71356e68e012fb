-- uses: _now, _slots
-- START (step start): record that a request is about to be sent; the record says ``running``, with a
-- lease in the running index, until the attempt ends. Nothing is sent for a halted or paused portal.
-- With slot keys, the job's rate-limit slots are taken in the same step: a slot too far ahead (or
-- at or past the deadline) puts the job back to wake just before it, holding it (step put_back).
-- KEYS: record, portal halt, portal rate pause, running index, arq queue, the portal's scheduled
--       index, line pacing (''), portal bucket ('')
-- ARGV: job_id, attempt_json, lease_ms, queue member, attempt token (random, one per START call),
--       then with slot keys: line interval ms, bucket interval ms, tolerance ms, line lateness ms,
--       portal lateness ms, precise wait ms, early wake ms, deadline (unix ms; 0: none)
-- Returns {'started', n, ms to wait for the slots} | {'held', wake ms} (put back, holding its slots) |
-- {'halted', ms left} | {'busy', n, redis ms} (its worker keeps its lease alive: the queue entry moves
-- to when the lease would lapse) | {'interrupted', n, redis ms} (the lease lapsed: nobody may work on
-- it any more) | {'final', state} | {'missing', '0'}.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '0'} end
if can('start', state, S.RUNNING) then
  -- a halted or paused portal sends nothing, not even for a slot reserved before the pause began
  local halted = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]))
  if halted > 0 then return {'halted', tostring(halted)} end
  local wait = 0
  if (KEYS[7] or '') ~= '' or (KEYS[8] or '') ~= '' then
    local now = redis_now()
    local held, far = take_slots(KEYS[1], now, {
      line_key = KEYS[7], bucket_key = KEYS[8], pause_key = KEYS[3],
      line_interval = tonumber(ARGV[6]), interval = tonumber(ARGV[7]), tolerance = tonumber(ARGV[8]),
      line_late = tonumber(ARGV[9]), portal_late = tonumber(ARGV[10]), precise = tonumber(ARGV[11]),
    })
    local latest = now
    for _, at in pairs(held) do if at > latest then latest = at end end
    local deadline = tonumber(ARGV[13])
    if far or (deadline > 0 and latest >= deadline) then
      -- a slot to wait for: put back to wake just before it (at the deadline, to expire then)
      if not can('put_back', state, state) then return {'refused', state} end
      local wake = (far or latest) - tonumber(ARGV[12])
      if deadline > 0 and wake > deadline then wake = deadline end
      wake = string.format('%d', wake)
      redis.call('HSET', KEYS[1], 'run_at', wake, 'slots', cjson.encode(held))
      redis.call('ZADD', KEYS[5], wake, ARGV[4])
      if (KEYS[6] or '') ~= '' then redis.call('ZADD', KEYS[6], wake, ARGV[1]) end
      return {'held', wake}
    end
    wait = latest - now
  end
  local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'state', S.RUNNING, 'attempt:' .. n, ARGV[2], 'lease', ARGV[5])
  redis.call('HDEL', KEYS[1], 'run_at', 'slots')
  -- the attempt's lease: the worker running it keeps it alive; once it lapses, nobody does
  redis.call('ZADD', KEYS[4], redis_now() + tonumber(ARGV[3]), ARGV[1])
  if (KEYS[6] or '') ~= '' then redis.call('ZREM', KEYS[6], ARGV[1]) end
  return {'started', tostring(n), string.format('%d', wait)}
end
local n = redis.call('HGET', KEYS[1], 'attempts') or '0'
if state == S.RUNNING then
  -- the same call again (redis-py re-sends a command whose reply a dropped connection lost):
  -- the attempt it started is still this caller's, and nothing has been sent yet
  if redis.call('HGET', KEYS[1], 'lease') == ARGV[5] then return {'started', n, '0'} end
  local now = redis_now()
  local lease = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if lease and tonumber(lease) > now then
    redis.call('ZADD', KEYS[5], 'XX', lease, ARGV[4])
    return {'busy', n, tostring(now)}
  end
  return {'interrupted', n, tostring(now)}
end
return {'final', state}
