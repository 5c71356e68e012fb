-- replay_refused(old_record): why the dead job ``old_record`` cannot be replayed, or nil.
local function replay_refused(old_record)
  local state = redis.call('HGET', old_record, 'state')
  if not state then return 'missing' end
  if not can('replay', state, S.DEAD) then return 'not dead: ' .. state end
  if redis.call('HEXISTS', old_record, 'replayed_by') == 1 then return 'already replayed' end
  return nil
end

-- mark_replayed(old_record, dead_index, old_id, new_id, retention_ms): the dead job is replayed by
-- ``new_id``: it leaves the dead-letter index and then expires like any finished record.
local function mark_replayed(old_record, dead_index, old_id, new_id, retention_ms)
  redis.call('HSET', old_record, 'replayed_by', new_id)
  redis.call('ZREM', dead_index, old_id)
  redis.call('PEXPIRE', old_record, retention_ms)
end
