-- DEPLOYMENT_SECRET: the deployment's secret, created once for all processes if there is none.
-- KEYS: secret; ARGV: the value to store if there is none. Returns the secret.
local value = redis.call('GET', KEYS[1])
if value then return value end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
