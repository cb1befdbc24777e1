-- wrk script: adds and removes members of a group, actors that have registered clients (each write
-- changes what those clients may reach). BENCH_GROUP is the group's ID, BENCH_ACTORS the actors' IDs
-- separated by commas.
function init(args)
  counter = 0
  token = os.getenv("GATEHOUSE_TOKEN")
  group = os.getenv("BENCH_GROUP")
  actors = {}
  for actor in string.gmatch(os.getenv("BENCH_ACTORS"), "[^,]+") do actors[#actors + 1] = actor end
end
function request()
  counter = counter + 1
  local index = (counter % #actors) + 1
  local method = (math.floor(counter / #actors) % 2 == 0) and "PUT" or "DELETE"
  return wrk.format(method, "/api/v1/groups/" .. group .. "/members/" .. actors[index], {["Authorization"] = "Bearer " .. token})
end
