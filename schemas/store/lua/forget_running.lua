-- FORGET_RUNNING: drop an index entry left behind by a job that is no longer running (a record that
-- expired, say). KEYS: record, running index; ARGV: job_id. Returns 1 if dropped.
if redis.call('HGET', KEYS[1], 'state') ~= S.RUNNING then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
