-- uses: _now
-- orphaned(running_key, job_id, seen_ms, stale_ms): nobody works on the job's attempt any more.
-- Its lease (kept alive by the worker that runs it) lapsed, and this command was not held up by a
-- stalled Redis since the caller saw it lapse (``seen_ms``, Redis time): after a stall the owner's
-- own writes, queued behind it, may be about to land, and they win.
local function orphaned(running_key, job_id, seen_ms, stale_ms)
  local now = redis_now()
  if now - tonumber(seen_ms) > tonumber(stale_ms) then return false end
  local lease = redis.call('ZSCORE', running_key, job_id)
  return (not lease) or tonumber(lease) <= now
end
