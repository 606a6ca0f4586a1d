-- Finish an owned entry by scheduling its next attempt (ack + reschedule, one atomic step).
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  record bucket of the task
-- KEYS[6]  stats hash
-- KEYS[7]  (optional) the concurrency slot set the attempt held: its slot is freed
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count the caller was given
-- ARGV[5]  task id
-- ARGV[6]  message for the next attempt
-- ARGV[7]  delay ms (<= 0: back to the stream at once)
-- ARGV[8]  record (status "failed")
-- ARGV[9]  record ttl ms
-- ARGV[10] events channel (a leading "!": sharded, see publish in _lib.lua)
-- returns  0 when the caller no longer owns the entry (nothing done), else the due time in ms
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if KEYS[7] then redis.call('ZREM', KEYS[7], ARGV[5]) end
local id, delay = ARGV[5], tonumber(ARGV[7])
local now = now_ms()
if delay <= 0 then
  local entry = redis.call('XADD', KEYS[1], '*', 'm', ARGV[6])
  redis.call('HSET', KEYS[4], id, entry)
else
  redis.call('ZADD', KEYS[2], now + delay, id)
  redis.call('HSET', KEYS[3], id, ARGV[6])
  redis.call('HDEL', KEYS[4], id)
end
put_record(KEYS[5], id, ARGV[8], ARGV[9])
redis.call('HINCRBY', KEYS[6], 'retried', 1)
if ARGV[10] ~= '' then
  publish(ARGV[10], cjson.encode({{id, 'failed'}}))
end
return now + math.max(delay, 0)
