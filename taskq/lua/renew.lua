-- Renew the leases of entries the caller holds (running or prefetched): reset their idle time
-- without raising the delivery count, only for those it still owns.
-- KEYS[1]  stream
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  how many of the caller's pending entries to scan
-- ARGV[4..] entry ids held
-- returns  the held entry ids the caller no longer owns
local owned = {}
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
if ok then
  for _, p in ipairs(pending) do owned[p[1]] = true end
end
local keep, lost = {}, {}
for i = 4, #ARGV do
  if owned[ARGV[i]] then keep[#keep + 1] = ARGV[i] else lost[#lost + 1] = ARGV[i] end
end
for i = 1, #keep, 500 do
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for j = i, math.min(i + 499, #keep) do args[#args + 1] = keep[j] end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return lost
