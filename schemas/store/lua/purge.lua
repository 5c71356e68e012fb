-- uses: _portal
-- PURGE (step purge): delete a dead job for good, with its idempotency key unless a replay took the
-- key over. A job that is no longer dead (replayed meanwhile) only leaves the dead index.
-- KEYS: record, dead index; ARGV: job_id, idempotency key prefix ('{p}:idem:'), per-portal dead
-- index prefix ('{p}:dead:').
-- Returns 1 if the job was deleted.
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('ZREM', KEYS[2], ARGV[1])
local portal = job_portal(KEYS[1])
if portal then redis.call('ZREM', ARGV[3] .. portal, ARGV[1]) end
if not state or not can('purge', state, 'gone') or redis.call('HEXISTS', KEYS[1], 'replayed_by') == 1 then
  return 0
end
-- the job's portal and key: record fields (CallbackJob.to_fields), or its JSON (records of up to 0.3)
local portal, key = unpack(redis.call('HMGET', KEYS[1], 'p', 'k'))
local raw = redis.call('HGET', KEYS[1], 'job')
if not portal and raw and raw ~= 'null' then
  local job = cjson.decode(raw)
  portal, key = job.portal, job.idempotency_key
end
if type(portal) == 'string' and type(key) == 'string' then
  local idem = ARGV[2] .. portal .. ':' .. key
  if redis.call('GET', idem) == ARGV[1] then redis.call('DEL', idem) end
end
redis.call('DEL', KEYS[1])
return 1
