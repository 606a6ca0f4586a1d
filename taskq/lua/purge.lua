-- Remove a batch of waiting tasks of one queue or priority lane, chosen by the caller (who read
-- them just before): stream entries not yet delivered to the group, and delayed tasks (due or
-- not). Each is checked again here and skipped when it is no longer waiting (delivered to a
-- worker meanwhile: entries being run, or delivered and not yet acked, are never removed;
-- promoted or cancelled). The unique key of each task removed is released in the same step.
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash: task id -> current entry id)
-- KEYS[5]  stats hash
-- KEYS[6..] unique keys of the chosen tasks
-- ARGV[1]  group
-- ARGV[2]  (unused; the queue or lane name, for reading the calls)
-- ARGV[3]  n: how many stream entries follow
-- ARGV[4..3+3n] per stream entry: its id, its task's id (from its envelope, see
--          taskq/ids.py), the KEYS index of the task's unique key (0 = none)
-- ARGV[4+3n..] per delayed task: its id, the KEYS index of its unique key (0 = none)
-- returns  {removed from the stream, removed from the delayed set, unique keys released}
local last = '0-0'
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, g in ipairs(groups) do
    local name, lid = nil, nil
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then lid = g[i + 1] end
    end
    if name == ARGV[1] and lid then last = lid end
  end
end
local last_ms, last_seq = string.match(last, '^(%d+)-(%d+)$')
last_ms, last_seq = tonumber(last_ms), tonumber(last_seq)
local function undelivered(entry)
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  if not ms then return false end
  return ms > last_ms or (ms == last_ms and seq > last_seq)
end
local released = 0
local function release(k, task_id)
  if k > 0 and redis.call('GET', KEYS[k]) then
    release_unique(KEYS[k], task_id, 0)
    if redis.call('EXISTS', KEYS[k]) == 0 then released = released + 1 end
  end
end

local n = tonumber(ARGV[3])
local gone = {}
for i = 4, 3 + 3 * n, 3 do
  local entry, task_id, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if undelivered(entry) and #redis.call('XRANGE', KEYS[1], entry, entry) > 0 then
    gone[#gone + 1] = entry
    redis.call('HDEL', KEYS[4], task_id)
    release(k, task_id)
  end
end
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
local delayed = 0
for i = 4 + 3 * n, #ARGV, 2 do
  local id, k = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('ZREM', KEYS[2], id) == 1 then
    delayed = delayed + 1
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    release(k, id)
  end
end
local removed = #gone + delayed
if removed > 0 then redis.call('HINCRBY', KEYS[5], 'purged', removed) end
return {#gone, delayed, released}
