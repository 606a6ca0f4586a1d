-- Check, without running anything, that this ACL user may run what producing to a queue and
-- promoting its delayed tasks need (readiness: /ready, the service's start).
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- returns  the first refused command, as "the 'xadd' command on 'key'"; false when all may run
return acl_denied({{'XADD', KEYS[1], '*', 'm', 'x'}, {'XLEN', KEYS[1]},
                   {'ZADD', KEYS[2], '0', 'x'}, {'ZCARD', KEYS[2]}, {'ZREM', KEYS[2], 'x'},
                   {'HSET', KEYS[3], 'x', 'x'}, {'HDEL', KEYS[3], 'x'}}) or false
