-- bench/tls/access.lua: wrk plays the gateway of the zero-trust benchmark
-- (bench/tls/run, issue 5).  Each request is an access check
-- (GET /v1/access/check, the URL's path and query) for the next of the
-- first N devices of a devices file written by `mdm-tls-bench enroll`
-- (lines: device_id device_token certificate_url_encoded), in turn:
--
--   cert   the device's certificate in X-Client-Cert, URL-encoded as
--          nginx's $ssl_client_escaped_cert forwards it (mdmd believes it
--          only from --trusted-proxies)
--   token  the device's token, Authorization: Bearer
--
--   wrk -t2 -c32 -d10s --latency -s access.lua \
--     'http://127.0.0.1:PORT/v1/access/check?application=crm' -- FILE cert 1000
--
-- The requests are made once, in init(); each wrk thread starts at another
-- device so that the threads do not ask for the same one at once.

local n_threads = 0

function setup(thread)
  thread:set("tid", n_threads)
  n_threads = n_threads + 1
end

function init(args)
  local file, mode = args[1], args[2] or "cert"
  local want = tonumber(args[3] or "1000")
  if not file or (mode ~= "cert" and mode ~= "token") then
    error("access.lua: arguments: DEVICES_FILE cert|token [N]")
  end
  reqs = {}
  for line in io.lines(file) do
    local id, tok, cert = line:match("^([%x-]+) (%S+) (%S+)$")
    if id then
      local h = {}
      if mode == "cert" then
        h["X-Client-Cert"] = cert
      else
        h["Authorization"] = "Bearer " .. tok
      end
      reqs[#reqs + 1] = wrk.format("GET", wrk.path, h)
      if #reqs >= want then
        break
      end
    end
  end
  if #reqs == 0 then
    error("access.lua: no devices in " .. file)
  end
  i = ((tid or 0) * 7919) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
