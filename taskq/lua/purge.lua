-- Remove up to a batch of waiting tasks from a queue: stream entries not yet delivered to the
-- group (entries being run are untouched), then due-or-not delayed tasks.
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash: task id -> current entry id)
-- KEYS[5]  stats hash
-- ARGV[1]  group
-- ARGV[2]  the most to remove in this call
-- returns  {removed from the stream, removed from the delayed set}
local batch = tonumber(ARGV[2])
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
local rows = {}
if redis.call('EXISTS', KEYS[1]) == 1 then
  rows = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', batch)
end
local gone = {}
for _, row in ipairs(rows) do
  gone[#gone + 1] = row[1]
  local body = row[2]
  for j = 1, #body, 2 do
    if body[j] == 'm' then
      local okm, msg = pcall(cmsgpack.unpack, body[j + 1])
      if okm and type(msg) == 'table' and type(msg['i']) == 'string' then
        redis.call('HDEL', KEYS[4], msg['i'])
      end
    end
  end
end
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
local room = batch - #gone
local delayed = {}
if room > 0 then
  delayed = redis.call('ZRANGE', KEYS[2], 0, room - 1)
  if #delayed > 0 then
    redis.call('ZREM', KEYS[2], unpack(delayed))
    redis.call('HDEL', KEYS[3], unpack(delayed))
  end
end
local n = #gone + #delayed
if n > 0 then redis.call('HINCRBY', KEYS[5], 'purged', n) end
return {#gone, #delayed}
