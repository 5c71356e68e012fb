-- uses: _now
-- DEFER: an attempt still running elsewhere (or not judged yet): look at it again later.
-- KEYS: record, arq queue; ARGV: queue member, delay_ms. Returns 1 if moved.
if redis.call('HGET', KEYS[1], 'state') == S.RUNNING then
  redis.call('ZADD', KEYS[2], 'XX', redis_now() + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
