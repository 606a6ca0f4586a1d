-- Fire the due ticks of a queue's periodic schedules. Any worker may run it at any time: a tick
-- is claimed by moving the schedule's last tick past it, atomically with the enqueue, so each
-- tick is enqueued once however many workers pass, and due means due on Redis's clock.
-- KEYS[1]  periodic (hash; per schedule NAME the fields d:NAME digest, p:NAME message,
--          c:NAME catch-up policy, l:NAME last tick ms, t:NAME last task id, f:NAME when it
--          fired (ms), n:NAME tasks fired, s:NAME ticks skipped, x:NAME paused; and "seen", the
--          Redis time of the last pass)
-- KEYS[2]  stream
-- KEYS[3]  periodic log (stream, capped: the schedules' recent fires and skips, for operators)
-- ARGV[1]  missed_after_ms: a pass more than this after the previous one (no worker passed in
--          between) applies each schedule's catch-up policy to the ticks that came due
-- ARGV[2]  backlog limit of the stream (0 = none): a tick due while the stream is full is skipped
-- ARGV[3]  the queue's name (task ids are "<queue>:<entry id>")
-- ARGV[4]  the most entries the periodic log keeps (approximately)
-- ARGV[5..] per schedule: name, digest, message (its envelope as enqueued now; '' for the stored
--          one; each task gets it with its tick appended, field "s"), H, H ticks (ascending: the first ticks after the last
--          tick the caller knows, without a hole), T, T ticks (ascending: those around the
--          caller's estimate of the Redis time)
-- returns  {now ms, missed (0/1), then per schedule {name, state, last tick, fired, skipped,
--          last task id}}; state: 'ok', 'paused', 'full', 'stale' (another definition is
--          stored: the caller's code is older or newer), 'gone' (no such schedule)
local K, stream, journal = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms()
local seen = tonumber(redis.call('HGET', K, 'seen') or '0')
local missed = (now - seen) > tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local queue = ARGV[3]
local cap = ARGV[4]
local out = {now, missed and 1 or 0}

-- the envelope (a fixmap written by taskq/codec.py) with the tick appended as field "s" (a
-- msgpack uint64): the task learns the tick it runs for, the same in its retries and replays
local function with_tick(message, tick)
  local head = string.byte(message, 1)
  if not head or head < 128 or head >= 143 then return message end
  local bytes, n = {}, tick
  for j = 8, 1, -1 do bytes[j] = n % 256; n = math.floor(n / 256) end
  return string.char(head + 1) .. string.sub(message, 2) .. string.char(161) .. 's'
         .. string.char(207) .. string.char(unpack(bytes))
end

local function fire(name, tick, message)
  if limit > 0 and redis.call('XLEN', stream) >= limit then return nil end
  if message == '' then message = redis.call('HGET', K, 'p:' .. name) end
  local entry = redis.call('XADD', stream, '*', 'm', with_tick(message, tick))
  local id = queue .. ':' .. entry
  redis.call('HSET', K, 'l:' .. name, tick, 't:' .. name, id, 'f:' .. name, now)
  redis.call('HINCRBY', K, 'n:' .. name, 1)
  redis.call('XADD', journal, 'MAXLEN', '~', cap, '*', 'n', name, 'k', tick, 't', id,
             'w', 'fired')
  return id
end

local function skipped_log(name, tick, count, why)
  redis.call('XADD', journal, 'MAXLEN', '~', cap, '*', 'n', name, 'k', tick, 's', count,
             'w', why)
end

local i = 5
while i <= #ARGV do
  local name, digest, message = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local nh = tonumber(ARGV[i + 3])
  local head = {}
  for j = 1, nh do head[j] = tonumber(ARGV[i + 3 + j]) end
  i = i + 4 + nh
  local nt = tonumber(ARGV[i])
  local tail = {}
  for j = 1, nt do tail[j] = tonumber(ARGV[i + j]) end
  i = i + 1 + nt
  local stored = redis.call('HGET', K, 'd:' .. name)
  local state, last, fired, skipped = 'ok', 0, 0, 0
  if stored and redis.call('HEXISTS', K, 'p:' .. name) == 0 then
    stored = false  -- (its fields were edited by hand: nothing to enqueue)
  end
  if not stored then
    state = 'gone'
  elseif stored ~= digest then
    state = 'stale'
    last = tonumber(redis.call('HGET', K, 'l:' .. name) or '0')
  else
    last = tonumber(redis.call('HGET', K, 'l:' .. name) or '0')
    -- the due ticks the caller gave: of the head (in order, without a hole) and the latest
    local due, latest = {}, nil
    for _, t in ipairs(head) do
      if t > last and t <= now then due[#due + 1] = t; latest = t end
    end
    local extra = 0
    for _, t in ipairs(tail) do
      if t > last and t <= now and (latest == nil or t > latest) then
        latest = t
        extra = extra + 1
      end
    end
    local policy = redis.call('HGET', K, 'c:' .. name) or 'once'
    if latest == nil then
      state = 'ok'
    elseif redis.call('HEXISTS', K, 'x:' .. name) == 1 then
      state, skipped, last = 'paused', #due + extra, latest
    elseif missed and policy ~= 'all' then
      skipped = #due + extra
      if policy == 'once' then
        if fire(name, latest, message) then fired, skipped = 1, skipped - 1 else state = 'full' end
      end
      last = latest
    else
      -- each due tick its own task, in order (a worker passed recently, or policy 'all')
      for _, t in ipairs(due) do
        if fire(name, t, message) then fired = fired + 1 else skipped = skipped + 1; state = 'full' end
        last = t
      end
    end
    if skipped > 0 then
      redis.call('HINCRBY', K, 's:' .. name, skipped)
      local why = state
      if state == 'ok' then why = 'missed' end
      skipped_log(name, last, skipped, why)
    end
    redis.call('HSET', K, 'l:' .. name, last)
  end
  out[#out + 1] = {name, state, last, fired, skipped,
                   redis.call('HGET', K, 't:' .. name) or ''}
end
redis.call('HSET', K, 'seen', now)
return out
