-- ATTEMPT_ENTRY: store how an attempt ended (``attempt:N``) on the job's record, and count its request
-- latency in the portal's stats of the minute (the dashboard's), only if the record exists: a record
-- gone meanwhile (expired, purged) must not come back as a stray hash holding one attempt.
-- KEYS: record, the minute's stats ('' none)
-- ARGV: field (attempt:N), entry JSON, latency bucket field, latency count field, latency sum field,
--       duration ms, stats ttl ms
-- Returns 1 if written, 0 if the record is missing.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if KEYS[2] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
  redis.call('HINCRBY', KEYS[2], ARGV[5], ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return 1
