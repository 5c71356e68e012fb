-- uses: _now
-- reserve(bucket_key, pause_key, interval_ms, tolerance_ms) -> ms from now until the slot: the GCRA
-- "theoretical arrival time" of a leaky bucket, on Redis's clock so that workers share one bucket.
local function reserve(bucket_key, pause_key, interval, tolerance)
  local now = redis_now()
  local earliest = now
  local pause = redis.call('PTTL', pause_key)
  if pause > 0 then earliest = now + pause end
  local tat = tonumber(redis.call('GET', bucket_key) or '0')
  local slot = tat - tolerance
  if slot < earliest then slot = earliest end
  local base = tat
  if base < slot then base = slot end
  local new_tat = base + interval
  -- the key outlives the moment the bucket is empty again, then vanishes by itself
  redis.call('SET', bucket_key, tostring(new_tat), 'PX', math.floor(math.max(new_tat - now + 1000, 1000)))
  return slot - now
end
