-- uses: _orphaned, _replayed, _operating
-- FINALIZE (steps record, finish, cancel): write a job's final outcome, exactly once, and append it
-- to the outcome stream in the same step. ``record``: a submission final on arrival (no record yet:
-- rejected, duplicate, expired; a replay that expired at once marks the dead job it replays).
-- KEYS: record, claim (''), idem (''), outcomes, dead index, arq job, arq queue,
--       portal's rate-refusal strikes ('': none; a success ends a run of refusals), running index,
--       replayed record ('' unless a replay), the portal's scheduled index, the portal's dead index,
--       the portal's stats of this minute ('' for input without a portal), KEYS[14] below ('' or
--       absent: no reading), arq's try counter of the job (absent: none to remove)
-- ARGV: job_id, status, outcome_json, retention_ms, outcomes_maxlen, dedupe_window_ms, now_ms,
--       queue member, step, expected states (csv; '' any the step allows), job_json (record),
--       attempts (record), attempt field (''), attempt entry, drop_arq ('1': remove the arq job and
--       its queue entry), orphan guard ('': none, else the Redis ms the caller saw the lease lapse),
--       stale_ms, replayed job id, owner ('' or the lease token of the attempt whose worker writes),
--       latency bucket field ('' without an attempt), latency ms, stats ttl ms,
--       then, with KEYS[14] (the portal's execution-time readings; absent or '' if none): method,
--       reading (JSON), its finish (unix ms), the readings' lifetime (ms); kept first, whatever
--       else happens (OPERATING's step, in the same round trip); '' four times without a reading,
--       then the outcome's record fields (name, value, ...; none: the record keeps ARGV[3] whole)
-- Returns {verdict, state}: 'written', or what prevented it: 'exists' / 'missing' / 'final' /
-- 'busy' (not in an expected state, or the orphan's lease came alive again) / 'superseded' (the
-- owner's attempt was judged orphaned and another one started since) / 'refused' (the
-- transition is not in the state machine, or the replayed job cannot be replayed).
local state = redis.call('HGET', KEYS[1], 'state')
local step, status = ARGV[9], ARGV[2]
if (KEYS[14] or '') ~= '' then keep_reading(KEYS[14], ARGV[23], ARGV[24], ARGV[25], ARGV[26]) end
if step == 'record' then
  if state then return {'exists', state} end
  if KEYS[10] ~= '' then
    local why = replay_refused(KEYS[10])
    if why then return {'refused', why} end
  end
else
  if not state then return {'missing', ''} end
  if FINAL[state] then return {'final', state} end
  if ARGV[10] ~= '' and not in_csv(ARGV[10], state) then return {'busy', state} end
  if ARGV[16] ~= '' and not orphaned(KEYS[9], ARGV[1], ARGV[16], ARGV[17]) then
    return {'busy', state}
  end
  if ARGV[19] ~= '' and redis.call('HGET', KEYS[1], 'lease') ~= ARGV[19] then
    return {'superseded', state}
  end
end
if not can(step, state or S.NEW, status) then return {'refused', state or S.NEW} end
if step == 'record' then
  redis.call('HSET', KEYS[1], 'job', ARGV[11], 'attempts', ARGV[12], 'created_at', ARGV[7])
  if KEYS[10] ~= '' then
    mark_replayed(KEYS[10], KEYS[5], ARGV[18], ARGV[1], ARGV[4])
    if KEYS[12] ~= '' then redis.call('ZREM', KEYS[12], ARGV[18]) end
  end
end
if #ARGV > 26 then
  -- the outcome as the record keeps it: what the record does not say already (schemas.store.compact;
  -- its ``of`` says when, so no ``finished_at``: nothing reads that)
  redis.call('HSET', KEYS[1], 'state', status, unpack(ARGV, 27))
else
  redis.call('HSET', KEYS[1], 'state', status, 'outcome', ARGV[3], 'finished_at', ARGV[7])
end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], ARGV[13], ARGV[14]) end
if status == S.SUCCEEDED and KEYS[8] ~= '' then redis.call('DEL', KEYS[8]) end
redis.call('HDEL', KEYS[1], 'run_at', 'lease')
if KEYS[9] ~= '' then redis.call('ZREM', KEYS[9], ARGV[1]) end
if KEYS[11] ~= '' then redis.call('ZREM', KEYS[11], ARGV[1]) end
if KEYS[13] ~= '' then
  -- the dashboard's last hour: outcomes per minute by status, the latency of the ending attempt
  redis.call('HINCRBY', KEYS[13], status, 1)
  if ARGV[20] ~= '' then
    redis.call('HINCRBY', KEYS[13], ARGV[20], 1)
    redis.call('HINCRBY', KEYS[13], 'lat_n', 1)
    redis.call('HINCRBY', KEYS[13], 'lat_sum', ARGV[21])
  end
  redis.call('PEXPIRE', KEYS[13], ARGV[22])
end
if status == S.DEAD then
  -- dead letters stay until replayed or purged
  redis.call('PERSIST', KEYS[1])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[1])
  if KEYS[12] ~= '' then redis.call('ZADD', KEYS[12], ARGV[7], ARGV[1]) end
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'outcome', ARGV[3])
if KEYS[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  if status == S.SUCCEEDED and tonumber(ARGV[6]) > 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  else
    redis.call('DEL', KEYS[2])
  end
end
if KEYS[3] ~= '' then
  if step == 'record' then redis.call('SET', KEYS[3], ARGV[1], 'NX') end
  if redis.call('GET', KEYS[3]) == ARGV[1] then
    if status == S.DEAD then redis.call('PERSIST', KEYS[3]) else redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
  end
end
if ARGV[15] == '1' then
  redis.call('ZREM', KEYS[7], ARGV[8])
  redis.call('DEL', KEYS[6])
  -- arq's try counter, left by a 0.2 worker that ran the job and died (about a day otherwise)
  if (KEYS[15] or '') ~= '' then redis.call('DEL', KEYS[15]) end
end
return {'written', status}
