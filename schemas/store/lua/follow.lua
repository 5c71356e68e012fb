-- uses: _now
-- FOLLOW (call step follow): a succeeded job's call is out (its CALL_ID known): await its end.
-- Sent in one MULTI with FINALIZE after a success, and on its own when a redial was accepted.
-- KEYS: record, call index ({p}:callid:{portal}:{call_id}), calls schedule, dialling leases
-- ARGV: job_id, call_id, attempt number, now_ms, first poll delay ms, index ttl ms,
--       token ('' or the dialling redial's lease token), attempt field (''), attempt entry
-- Returns {'ok', call state} | {'refused', job or call state} | {'superseded', call state}.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= S.SUCCEEDED then return {'refused', state or 'missing'} end
local call = redis.call('HGET', KEYS[1], 'call') or C.NONE
if call == C.AWAITING and redis.call('HGET', KEYS[1], 'call_id') == ARGV[2] then return {'ok', call} end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'call_lease') ~= ARGV[7] then return {'superseded', call} end
if not call_can('follow', call, C.AWAITING) then return {'refused', call} end
redis.call('HSET', KEYS[1], 'call', C.AWAITING, 'call_id', ARGV[2], 'call_attempt', ARGV[3],
  'call_since', ARGV[4], 'call_polls', '0')
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], ARGV[8], ARGV[9]) end
redis.call('HDEL', KEYS[1], 'call_lease', 'run_at')
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], redis_now() + tonumber(ARGV[5]), ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return {'ok', C.AWAITING}
