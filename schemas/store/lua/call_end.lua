-- uses: _now
-- CALL_END (call steps call_end, redial and cancel): a call's end is known, or a person cancels a
-- waiting redial (``cancel``: like ``call_end``, with the last call's result as the final one). ``redial``: the job waits in
-- arq's queue for its redial, holding its line + number claim. ``call_end``: the final call result,
-- written once, with one entry on the outcome stream (``kind call_result``), the claim kept for the
-- dedupe window from now. That entry also carries ``outcome``: the job's stored final outcome, byte
-- for byte, with ``"call": <ARGV[15]>`` appended (readers of ``fields["outcome"]`` that upsert by
-- job id see the same outcome, updated; readers that count entries skip ``kind call_result``).
-- KEYS: record, call index (''), calls schedule, dialling leases, outcomes, arq queue, arq job (only deleted: one 0.2 wrote), claim,
--       the portal's stats of this minute ('' but for call_end)
-- ARGV: job_id, step, expected call_id ('' any), this call's result JSON ('' none), final JSON
--       (call_end), now_ms, run_at_ms (redial), queue member, '' (was the stored arq job), claim ttl ms (redial:
--       while pending; call_end: the dedupe window), outcomes_maxlen, expected call states (csv;
--       '' any), token ('' or the dialling redial's lease token), retention ms, the outcome's
--       ``call`` object JSON (call_end), the stats field of the final result (``call:<kind>``), stats ttl ms,
--       the job's outcome JSON as its record gives it back (call_end; used when the record has no
--       ``outcome`` field), the final call result's compact form for the record ('' none: kept whole)
-- Returns {'written', call state} | {'refused', job or call state} | {'busy', call state} (not in
-- an expected state) | {'stale', call state} (another call is followed now) | {'superseded', ...}
-- | {'claimed', holder} (redial: another job holds the line + number; nothing changed).
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= S.SUCCEEDED then return {'refused', state or 'missing'} end
local call = redis.call('HGET', KEYS[1], 'call') or C.NONE
if ARGV[12] ~= '' and not in_csv(ARGV[12], call) then return {'busy', call} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'call_id') ~= ARGV[3] then return {'stale', call} end
if ARGV[13] ~= '' and redis.call('HGET', KEYS[1], 'call_lease') ~= ARGV[13] then return {'superseded', call} end
local step = ARGV[2]
local target = C.ENDED
if step == 'redial' then target = C.REDIAL end
if not call_can(step, call, target) then return {'refused', call} end
if target == C.REDIAL then
  local holder = redis.call('GET', KEYS[8])
  if holder and holder ~= ARGV[1] then return {'claimed', holder} end
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'call:' .. (redis.call('HGET', KEYS[1], 'call_attempt') or '0'), ARGV[4])
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[1], 'call_lease')
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if target == C.REDIAL then
  redis.call('HSET', KEYS[1], 'call', C.REDIAL, 'run_at', ARGV[7])
  redis.call('PERSIST', KEYS[1])  -- a job waiting for its redial must not expire
  redis.call('SET', KEYS[8], ARGV[1], 'PX', ARGV[10])
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[8])
  return {'written', C.REDIAL}
end
if (ARGV[19] or '') ~= '' then
  -- the final call result as the record keeps it: what it does not say already (schemas.store.compact)
  redis.call('HSET', KEYS[1], 'call', C.ENDED, 'cr', ARGV[19])
else
  redis.call('HSET', KEYS[1], 'call', C.ENDED, 'call_result', ARGV[5])
end
-- the schedule's bookkeeping: nothing reads it once the call's end is known
redis.call('HDEL', KEYS[1], 'run_at', 'call_polls', 'call_since')
redis.call('PEXPIRE', KEYS[1], ARGV[14])
local entry = {'kind', 'call_result'}
-- a record that keeps its outcome compact (schemas.store.compact): the caller rebuilt its JSON
local outcome = redis.call('HGET', KEYS[1], 'outcome') or ARGV[18]
if outcome and ARGV[15] ~= '' and string.sub(outcome, 1, 1) == '{' and string.sub(outcome, -1) == '}' then
  entry[#entry + 1] = 'outcome'
  entry[#entry + 1] = string.sub(outcome, 1, -2) .. ',"call":' .. ARGV[15] .. '}'
end
entry[#entry + 1] = 'call_result'
entry[#entry + 1] = ARGV[5]
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', unpack(entry))
if KEYS[9] and KEYS[9] ~= '' and ARGV[16] and ARGV[16] ~= '' then
  -- the dashboard's last hour: final call results by kind, for the reached ratio
  redis.call('HINCRBY', KEYS[9], ARGV[16], 1)
  redis.call('PEXPIRE', KEYS[9], ARGV[17])
end
if redis.call('GET', KEYS[8]) == ARGV[1] then
  if tonumber(ARGV[10]) > 0 then redis.call('PEXPIRE', KEYS[8], ARGV[10]) else redis.call('DEL', KEYS[8]) end
end
if call == C.REDIAL then
  redis.call('ZREM', KEYS[6], ARGV[8])
  redis.call('DEL', KEYS[7])
end
return {'written', C.ENDED}
