-- keep_reading(readings, method, reading, finish_ms, ttl_ms): keep a method's execution-time reading
-- from a Bitrix24 answer, the newest one: answers of concurrent requests come back in any order.
-- Returns 1 if it is the newest, else 0.
local function keep_reading(readings, method, reading, finish_ms, ttl_ms)
  local stored = redis.call('HGET', readings, method)
  if stored then
    local ok, old = pcall(cjson.decode, stored)
    if ok and type(old) == 'table' and tonumber(old['finish']) and tonumber(old['finish']) * 1000 > tonumber(finish_ms) then
      return 0
    end
  end
  redis.call('HSET', readings, method, reading)
  redis.call('PEXPIRE', readings, ttl_ms)
  return 1
end
