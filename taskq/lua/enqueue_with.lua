-- Enqueue messages sent with options (taskq/options.py): a unique key, an absolute run-at time,
-- or a delay together with a key. The check of a key and the add are one atomic step.
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set: task id -> due ms)
-- KEYS[3]  payloads (hash: task id -> message)
-- KEYS[4]  entries (hash: task id -> current entry id)
-- KEYS[5..13] stream, delayed set and entries hash of each priority lane of the queue (high,
--          normal, low; see taskq/priority.py): a key is held per queue, whatever the lane of
--          its task, so its holder is looked for in the holder's own lane
-- KEYS[14..] unique keys used by this batch
-- ARGV[1]  backlog limit, for the stream and for the delayed set (0 = none)
-- ARGV[2]  queue name (a ready task's id is "<queue>:<entry id>")
-- ARGV[3..5] the names of the lanes of KEYS[5..13], in that order
-- ARGV[6..] five per message: unique key index into KEYS (0 = none), task id ('' for a ready
--          task: its entry id names it), message, due ('' = ready now, 'd<ms>' = in ms,
--          'a<ms>' = at this epoch ms on the Redis clock), request fingerprint ('' = none:
--          the key alone dedupes)
-- returns  {1, then four per message: task id, 0 added | 1 deduplicated (the key's task is
--          queued, delayed, running or retrying) | 2 deduplicated (kept after success),
--          due ms (0 when ready), the fingerprint stored with the key ('' when added)}
--          or {0, backlog, 'stream' | 'delayed'} when refused (then nothing was added)
--          or {2, holder task id ('' = an earlier message of this batch), KEYS index} when a
--          key is held for, or given twice in the batch with, another fingerprint (a request
--          with other arguments): refused, nothing was added
-- A unique key holds "a\n<task id>\n<fingerprint>" while its task lives, "s\n..." when kept
-- after success (with a TTL). The scripts that end a task delete the key (compare-and-delete);
-- should one ever be left behind (a task whose entry vanished), a key whose task is neither
-- delayed nor in its lane's stream is taken over here.
local limit = tonumber(ARGV[1])
local queue = ARGV[2]
local ready, later = 0, 0
for i = 6, #ARGV, 5 do
  if ARGV[i + 3] == '' then ready = ready + 1 else later = later + 1 end
end
if limit > 0 then
  if ready > 0 then
    local len = redis.call('XLEN', KEYS[1])
    if len + ready > limit then return {0, len, 'stream'} end
  end
  if later > 0 then
    local len = redis.call('ZCARD', KEYS[2])
    if len + later > limit then return {0, len, 'delayed'} end
  end
end

-- The same key with another fingerprint refuses the whole call, before anything is added.
-- Only a message that carries a fingerprint (an HTTP Idempotency-Key request) is compared: a
-- code enqueue sends '' and dedupes by its key alone; a key stored without one ('', from a
-- code enqueue or a replay) matches any request.
local seen = {}
for i = 6, #ARGV, 5 do
  local lock, fp = tonumber(ARGV[i]), ARGV[i + 4]
  if lock > 0 and fp ~= '' then
    if seen[lock] == nil then
      seen[lock] = fp
      local held = redis.call('GET', KEYS[lock])
      if held then
        local state, holder, stored = string.match(held, '^(%a)\n([^\n]*)\n(.*)$')
        if stored ~= nil and stored ~= '' and stored ~= fp
            and (state == 's' or (state == 'a' and lane_task_alive(holder, 5, 3))) then
          return {2, holder, lock}
        end
      end
    elseif seen[lock] ~= fp then
      return {2, '', lock}
    end
  end
end

local now = nil
local out = {1}
for i = 6, #ARGV, 5 do
  local lock = tonumber(ARGV[i])
  local id, payload, due_spec, fp = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local hit = nil
  if lock > 0 then
    local held = redis.call('GET', KEYS[lock])
    if held then
      local state, holder, stored = string.match(held, '^(%a)\n([^\n]*)\n(.*)$')
      if state == 's' then
        hit = {holder, 2, 0, stored}
      elseif state == 'a' then
        local live, due = lane_task_alive(holder, 5, 3)
        if live then hit = {holder, 1, due, stored} end
      end
    end
  end
  if hit then
    for _, v in ipairs(hit) do out[#out + 1] = v end
  else
    local due = 0
    if due_spec == '' then
      local entry = redis.call('XADD', KEYS[1], '*', 'm', payload)
      id = queue .. ':' .. entry
    else
      if now == nil then now = now_ms() end
      local n = tonumber(string.sub(due_spec, 2))
      if string.sub(due_spec, 1, 1) == 'a' then due = math.max(n, now) else due = now + n end
      redis.call('ZADD', KEYS[2], due, id)
      redis.call('HSET', KEYS[3], id, payload)
    end
    if lock > 0 then
      redis.call('SET', KEYS[lock], 'a\n' .. id .. '\n' .. fp)
    end
    out[#out + 1] = id
    out[#out + 1] = 0
    out[#out + 1] = due
    out[#out + 1] = ''
  end
end
return out
