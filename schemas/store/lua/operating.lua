-- OPERATING: keep a method's execution-time reading from a Bitrix24 answer, the newest one: answers
-- of concurrent requests come back in any order. KEYS: the portal's readings (hash); ARGV: method,
-- reading (JSON), its finish (unix ms), the hash's lifetime (ms). Returns 1 if it is the newest, else 0.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local ok, old = pcall(cjson.decode, stored)
  if ok and type(old) == 'table' and tonumber(old['finish']) and tonumber(old['finish']) * 1000 > tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
