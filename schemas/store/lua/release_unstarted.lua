-- RELEASE_UNSTARTED: a job this process had picked but not started (no request sent): let any worker
-- take it now. KEYS: record, arq in-progress. Returns 1 if released.
local state = redis.call('HGET', KEYS[1], 'state')
if state and can('start', state, S.RUNNING) then return redis.call('DEL', KEYS[2]) end
return 0
