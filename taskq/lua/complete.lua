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
-- ARGV[4]  events channel (a leading "!": sharded, see publish in _lib.lua)
-- ARGV[5]  how many of the caller's pending entries to scan in the batch's id range
-- ARGV[6]  one line per item: entry id, delivery count, bucket index (into KEYS[6..]), task
--          id, status, flags, separated by tabs (flags: "e" drop the entries mapping, "c" drop
--          the cancel request); queue names and ids hold no tabs or newlines
-- ARGV[7..] the items' records, in the same order
-- ARGV[7+n..] (n items; only when some item holds a concurrency slot, see throttle.lua) per
--          item, the index into KEYS of the slot set it holds, or 0: the slot is freed
-- ARGV[7+2n]  only when the batch holds workflow steps (then the slot section above is there,
--          zeros when no item holds a slot): one line per step, "item index (1-based)\tKEYS
--          index of its workflow hash\tstep index"; the step's queues' streams and entries
--          hashes follow its workflow hash in KEYS (see _workflow.lua), and ARGV[7+2n+j] is
--          the j-th step's result (msgpack)
-- ARGV[8+2n+s] (s: the number of step lines; only when some item holds a unique key: then the
--          sections above are there, empty when unused) one line per such item: item index
--          (1..n), index of its unique key in KEYS, ms to keep it after success (0: release)
-- returns  the entry ids the caller no longer owns (nothing was done for those), then, when
--          Redis is at maxmemory, "lean:<n>": n records were stored in their minimal form
-- Under memory pressure (Redis refuses writes that may add memory) finishing work must free
-- memory, never add to it: the entries are acked and deleted as always, but each record keeps
-- only its status ({s, m = 1}, a few bytes, not the result or the traceback),
-- counted in the stats hash as 'records_lean'. Checked before the first write (see _lib.lua).
local group, consumer, ttl = ARGV[1], ARGV[2], ARGV[3]
local full = memory_full(KEYS[1])
-- Parse the items, and find the batch's id range (ids compare as ms, then sequence).
local items = {}
local lo, hi, lo_ms, lo_seq, hi_ms, hi_seq
for line in string.gmatch(ARGV[6], '[^\n]+') do
  local entry, deliveries, b, task_id, status, flags =
    string.match(line, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$')
  items[#items + 1] = {entry, deliveries, b, task_id, status, flags}
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  if ms then
    if lo == nil or ms < lo_ms or (ms == lo_ms and seq < lo_seq) then
      lo, lo_ms, lo_seq = entry, ms, seq
    end
    if hi == nil or ms > hi_ms or (ms == hi_ms and seq > hi_seq) then
      hi, hi_ms, hi_seq = entry, ms, seq
    end
  end
end
local owned = {}
if lo ~= nil then
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], group, lo, hi, tonumber(ARGV[5]), consumer)
  if ok then
    for _, p in ipairs(pending) do owned[p[1]] = tonumber(p[4]) end
  end
end
local slots = ARGV[7 + #items] ~= nil
local acked, lost, events = {}, {}, {}
local per_bucket = {}
local done, expired = 0, 0
for i, item in ipairs(items) do
  local entry, deliveries, b, task_id, status, flags =
    item[1], item[2], item[3], item[4], item[5], item[6]
  if owned[entry] ~= nil and owned[entry] == tonumber(deliveries) then
    acked[#acked + 1] = entry
    b = tonumber(b)
    local rows = per_bucket[b]
    if not rows then rows = {}; per_bucket[b] = rows end
    rows[#rows + 1] = task_id
    if full then
      rows[#rows + 1] = cmsgpack.pack({s = status, m = 1})
    else
      rows[#rows + 1] = ARGV[6 + i]
    end
    if flags ~= '' then
      if string.find(flags, 'e', 1, true) then redis.call('HDEL', KEYS[4], task_id) end
      if string.find(flags, 'c', 1, true) then redis.call('HDEL', KEYS[5], task_id) end
    end
    if slots then
      local s = tonumber(ARGV[6 + #items + i])
      if s > 0 then redis.call('ZREM', KEYS[s], task_id) end
    end
    events[#events + 1] = {task_id, status}
    if status == 'succeeded' then done = done + 1
    elseif status == 'expired' then expired = expired + 1 end
  else
    lost[#lost + 1] = entry
  end
end
if #acked > 0 then
  for i = 1, #acked, 1000 do  -- unpack() has a stack limit: big batches go in slices
    local last = math.min(i + 999, #acked)
    redis.call('XACK', KEYS[1], group, unpack(acked, i, last))
    redis.call('XDEL', KEYS[1], unpack(acked, i, last))
  end
  for b, rows in pairs(per_bucket) do
    local key = KEYS[5 + b]
    for i = 1, #rows, 2000 do
      redis.call('HSET', key, unpack(rows, i, math.min(i + 1999, #rows)))
    end
    keep_alive(key, ttl)
  end
  if done > 0 then
    redis.call('HINCRBY', KEYS[2], 'completed', done)
    if redis.call('INCRBY', KEYS[3], done) == done then redis.call('EXPIRE', KEYS[3], 7200) end
  end
  if expired > 0 then redis.call('HINCRBY', KEYS[2], 'expired', expired) end
  local at = 8 + 2 * #items  -- (after the slot and workflow sections)
  local step_lines = ARGV[7 + 2 * #items]
  if step_lines then
    for _ in string.gmatch(step_lines, '[^\n]+') do at = at + 1 end
  end
  local uniq = ARGV[at]
  if uniq then
    for line in string.gmatch(uniq, '[^\n]+') do
      local i, k, keep = string.match(line, '^(%d+)\t(%d+)\t(%d+)$')
      local item = items[tonumber(i)]
      if item and owned[item[1]] ~= nil and owned[item[1]] == tonumber(item[2]) then
        release_unique(KEYS[tonumber(k)], item[4], item[5] == 'succeeded' and tonumber(keep) or 0)
      end
    end
  end
  if full then
    redis.call('HINCRBY', KEYS[2], 'records_lean', #acked)
    lost[#lost + 1] = 'lean:' .. #acked
  end
  publish(ARGV[4], cjson.encode(events))
end
local steps = ARGV[7 + 2 * #items]
if steps then  -- workflow steps: counted and their successors enqueued, in this same script
  local j = 0
  for line in string.gmatch(steps, '[^\n]+') do
    j = j + 1
    local i, base, step = string.match(line, '^(%d+)\t(%d+)\t(%d+)$')
    local item = items[tonumber(i)]
    if owned[item[1]] ~= nil and owned[item[1]] == tonumber(item[2]) then
      wf_step_ended(tonumber(base), step, item[5], ARGV[7 + 2 * #items + j], nil, ttl)
    end
  end
end
return lost
