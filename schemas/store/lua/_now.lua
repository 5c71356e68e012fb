-- redis_now(): Redis's own clock in unix ms, so that workers on skewed machines agree.
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- in_csv(csv, name): whether ``name`` is one of the comma-separated ``csv``.
local function in_csv(csv, name)
  return string.find(',' .. csv .. ',', ',' .. name .. ',', 1, true) ~= nil
end
