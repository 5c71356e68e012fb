-- uses: _gcra
-- take_slots(record, now, slot): reserve what the job still lacks of its line's pacing slot and its
-- portal's bucket slot (the put-back of an earlier run may hold some: the record's ``slots``, unix
-- ms, kept unless too late to use). ``slot``: line and bucket keys ('' to skip), the portal's pause,
-- the line's interval, the bucket's interval and tolerance, how late a held line / portal slot may
-- still be used, and the longest wait a worker makes for a slot (ms).
-- Returns the slots held (name -> unix ms), and the first one too far ahead to wait for (or nil).
local function take_slots(record, now, slot)
  local held = {}
  local raw = redis.call('HGET', record, 'slots')
  if raw then
    local ok, old = pcall(cjson.decode, raw)
    if ok and type(old) == 'table' then
      for name, at in pairs(old) do
        local late = slot.portal_late
        if name == 'line' then late = slot.line_late end
        if tonumber(at) and tonumber(at) >= now - late then held[name] = math.floor(tonumber(at)) end
      end
    end
  end
  if slot.line_key ~= '' and not held['line'] then
    local delay = reserve(slot.line_key, slot.pause_key, slot.line_interval, 0)
    held['line'] = math.floor(now + delay)
    if delay > slot.precise then return held, held['line'] end
  end
  if slot.bucket_key ~= '' and not held['portal'] then
    local delay = reserve(slot.bucket_key, slot.pause_key, slot.interval, slot.tolerance)
    held['portal'] = math.floor(now + delay)
    if delay > slot.precise then return held, held['portal'] end
  end
  return held, nil
end
