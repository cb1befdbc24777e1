-- wrk script: adds and removes members of a group, actors that have registered clients (each write
-- changes what those clients may reach). BENCH_GROUP is the group's ID, BENCH_ACTORS the actors' IDs
-- separated by commas. Each wrk thread takes its own share of the actors, and cycles through it
-- adding each, then removing each, so that no two requests in flight touch the same membership.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  counter = 0
  token = os.getenv("GATEHOUSE_TOKEN")
  group = os.getenv("BENCH_GROUP")
  local all = {}
  for actor in string.gmatch(os.getenv("BENCH_ACTORS"), "[^,]+") do all[#all + 1] = actor end
  actors = {}
  for index = id, #all, 2 do actors[#actors + 1] = all[index] end
end
function request()
  local index = (counter % #actors) + 1
  local method = (math.floor(counter / #actors) % 2 == 0) and "PUT" or "DELETE"
  counter = counter + 1
  return wrk.format(method, "/api/v1/groups/" .. group .. "/members/" .. actors[index], {["Authorization"] = "Bearer " .. token})
end
