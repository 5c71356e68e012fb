-- uses: _gcra
-- RESERVE: take the next slot of a leaky bucket (a portal's, or a line's pacing).
-- KEYS: bucket, pause; ARGV: interval_ms, tolerance_ms. Returns ms from now until the slot.
return reserve(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
