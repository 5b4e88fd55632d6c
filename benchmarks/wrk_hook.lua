-- wrk script: POST a hook request, the same body each time or made new on each request.
--
--   wrk -t1 -c8 -d10s -s benchmarks/wrk_hook.lua http://127.0.0.1:PORT/cds-services/igg4rd-order-sign \
--       -- TEMPLATE_FILE RUN_PREFIX
--
-- TEMPLATE_FILE (written by wrk_bench.py) holds NUL-separated segments: the first is the JSON body; when
-- it contains the placeholder zQzQzQ, every request replaces it with a token new to the run (RUN_PREFIX,
-- the wrk thread, a counter), so every resource id (and, for the "new text" variant, every report
-- sentence) is one the server has never seen. The other segments are report texts sent base64-encoded:
-- the body names them @B64_1@, @B64_2@, ...; each segment is pieces separated by \1, alternating the
-- text's base64 (pre-encoded, 3-byte aligned) and the plain bytes before a token (encode_text).
-- Without the placeholder the body is formatted once and sent as is (warm).
--
-- With WRK_HOOK_CHECK=1 in the environment, every response's status and body are inspected (slower;
-- correctness runs only): done() prints how many were not 200 or lacked the published case's card ("total":35).
-- done() prints one JSON line: requests, errors, duration and latency percentiles in microseconds.

local PLACEHOLDER = "zQzQzQ"
local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64chars = {}
for i = 1, 64 do b64chars[i - 1] = B64:sub(i, i) end

local function base64(s)
   local out, n = {}, #s
   for i = 1, n, 3 do
      local a, b, c = s:byte(i, i + 2)
      local v = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(v / 262144) % 64
      local c2 = math.floor(v / 4096) % 64
      local c3 = math.floor(v / 64) % 64
      local c4 = v % 64
      out[#out + 1] = b64chars[c1] .. b64chars[c2]
         .. (b and b64chars[c3] or "=") .. (c and b64chars[c4] or "=")
   end
   return table.concat(out)
end

local parts, texts, fixed, prefix
local bad, seen = 0, 0

local function split(s, sep)
   local out, start = {}, 1
   while true do
      local i, j = s:find(sep, start, true)
      if not i then out[#out + 1] = s:sub(start); return out end
      out[#out + 1] = s:sub(start, i - 1)
      start = j + 1
   end
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   local data = f:read("*a")
   f:close()
   local segments = split(data, "\0")
   texts = {}
   for i = 2, #segments do texts[i - 1] = split(segments[i], "\1") end
   -- parts: literal strings, true for a token, a number i for text i (its @B64_i@ marker)
   parts = {}
   for n, chunk in ipairs(split(segments[1], PLACEHOLDER)) do
      if n > 1 then parts[#parts + 1] = true end
      local rest = chunk
      for i = 1, #texts do
         local a, b = rest:find("@B64_" .. i .. "@", 1, true)
         if a then
            parts[#parts + 1] = rest:sub(1, a - 1)
            parts[#parts + 1] = i
            rest = rest:sub(b + 1)
         end
      end
      parts[#parts + 1] = rest
   end
   prefix = (args[2] or "r0") .. "t" .. tostring(tid)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if #parts == 1 then
      fixed = wrk.format(nil, nil, nil, parts[1])
   end
end

-- A text's pieces alternate: base64 already encoded (aligned on 3 bytes), then the plain bytes before a
-- token; the token is padded with "x" so that what is encoded here ends on a 3-byte boundary too.
local function encode_text(pieces, token)
   local out = {}
   for i, piece in ipairs(pieces) do
      if i % 2 == 1 then
         out[#out + 1] = piece
      else
         local s = piece .. token
         out[#out + 1] = base64(s .. string.rep("x", (3 - #s % 3) % 3))
      end
   end
   return table.concat(out)
end

function request()
   if fixed then return fixed end
   counter = counter + 1
   local token = prefix .. "n" .. tostring(counter)
   local out = {}
   for n, part in ipairs(parts) do
      if part == true then
         out[n] = token
      elseif type(part) == "number" then
         out[n] = encode_text(texts[part], token)
      else
         out[n] = part
      end
   end
   return wrk.format(nil, nil, nil, table.concat(out))
end

-- wrk decides whether to parse response bodies from the script as loaded (before init), so the check mode
-- comes from the environment, not from the arguments.
if os.getenv("WRK_HOOK_CHECK") == "1" then
   function response(status, headers, resp)
      seen = seen + 1
      if status ~= 200 or not resp or not resp:find('"total":35', 1, true) then bad = bad + 1 end
      wrk.thread:set("bad", bad)
      wrk.thread:set("seen", seen)
   end
end

function done(summary, latency, requests)
   local bad_total, seen_total = 0, 0
   for _, t in ipairs(threads) do
      bad_total = bad_total + (t:get("bad") or 0)
      seen_total = seen_total + (t:get("seen") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"max":%d,"checked":%d,"bad":%d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      seen_total, bad_total))
end
