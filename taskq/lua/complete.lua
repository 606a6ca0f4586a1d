-- Finish a batch of entries the caller owns: ack and delete them, store their records.
-- KEYS[1]  stream
-- KEYS[2]  stats hash
-- KEYS[3]  completions counter of the current minute
-- KEYS[4]  entries (hash: task id -> current entry id)
-- KEYS[5]  cancels (hash: task id -> cancel request time)
-- KEYS[6..] record buckets used by this batch
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  record ttl ms
-- ARGV[4]  events channel
-- ARGV[5]  smallest entry id of the batch
-- ARGV[6]  largest entry id of the batch
-- ARGV[7]  how many of the caller's pending entries to scan in that range
-- ARGV[8..] groups of 7: entry id, delivery count, bucket index (into KEYS[6..]), task id,
--          status, record, flags ("e": drop the entries mapping, "c": drop the cancel request)
-- returns  the entry ids the caller no longer owns (nothing was done for those)
local group, consumer, ttl = ARGV[1], ARGV[2], ARGV[3]
local owned = {}
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], group, ARGV[5], ARGV[6], tonumber(ARGV[7]), consumer)
if ok then
  for _, p in ipairs(pending) do owned[p[1]] = tonumber(p[4]) end
end
local acked, lost, events = {}, {}, {}
local per_bucket = {}
local done = 0
for i = 8, #ARGV, 7 do
  local entry, deliveries = ARGV[i], tonumber(ARGV[i + 1])
  if owned[entry] ~= nil and owned[entry] == deliveries then
    acked[#acked + 1] = entry
    local b = tonumber(ARGV[i + 2])
    local rows = per_bucket[b]
    if not rows then rows = {}; per_bucket[b] = rows end
    rows[#rows + 1] = ARGV[i + 3]
    rows[#rows + 1] = ARGV[i + 5]
    local flags = ARGV[i + 6]
    if flags ~= '' then
      if string.find(flags, 'e', 1, true) then redis.call('HDEL', KEYS[4], ARGV[i + 3]) end
      if string.find(flags, 'c', 1, true) then redis.call('HDEL', KEYS[5], ARGV[i + 3]) end
    end
    events[#events + 1] = {ARGV[i + 3], ARGV[i + 4]}
    if ARGV[i + 4] == 'succeeded' then done = done + 1 end
  else
    lost[#lost + 1] = entry
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
  for b, rows in pairs(per_bucket) do
    local key = KEYS[5 + b]
    redis.call('HSET', key, unpack(rows))
    keep_alive(key, ttl)
  end
  if done > 0 then
    redis.call('HINCRBY', KEYS[2], 'completed', done)
    if redis.call('INCRBY', KEYS[3], done) == done then redis.call('EXPIRE', KEYS[3], 7200) end
  end
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], cjson.encode(events)) end
end
return lost
