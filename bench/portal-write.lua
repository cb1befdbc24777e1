-- wrk script: POST /api/v1/groups with a unique name per request (admin API writes).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  counter = 0
  token = os.getenv("GATEHOUSE_TOKEN")
  run = os.getenv("BENCH_RUN") or "0"
end
function request()
  counter = counter + 1
  local body = '{"name":"bench-' .. run .. '-' .. id .. '-' .. counter .. '"}'
  return wrk.format("POST", "/api/v1/groups", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
