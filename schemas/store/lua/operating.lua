-- uses: _operating
-- OPERATING: keep a method's execution-time reading from a Bitrix24 answer, the newest one.
-- KEYS: the portal's readings (hash); ARGV: method, reading (JSON), its finish (unix ms), the hash's
-- lifetime (ms). Returns 1 if it is the newest, else 0.
return keep_reading(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
