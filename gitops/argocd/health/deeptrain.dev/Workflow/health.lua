-- Argo CD health of a Workflow: Healthy once Ready, Degraded when the operator marks it Failed
-- (a referenced job failed or does not exist), Progressing while models train or serving rolls out.
-- Runs in Argo CD's Lua 5.1 sandbox (base and table libraries only): `obj` is the live object.
local hs = {status = "Progressing", message = "Waiting for the operator"}

local status = obj.status
if status == nil then
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local byType = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    byType[condition.type] = condition
  end
end

local function describe(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.reason .. ": " .. condition.message
  end
  return condition.reason
end

local ready = byType["Ready"]

if status.phase == "Failed" then
  hs.status = "Degraded"
  if ready ~= nil and ready.status ~= "True" then
    hs.message = describe(ready)
  else
    hs.message = status.message or "Failed"
  end
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  -- Losing the namespace's default to a newer workflow is worth showing, not a failure.
  local default = byType["Default"]
  if default ~= nil and default.status == "False" then
    hs.message = hs.message .. "; not the default: " .. describe(default)
  end
  return hs
end

-- Not ready yet: name the first stage still pending.
for _, stage in ipairs({"ModelsReady", "Serving", "Indexed", "Ready"}) do
  local condition = byType[stage]
  if condition ~= nil and condition.status ~= "True" then
    hs.message = stage .. ": " .. describe(condition)
    return hs
  end
end
return hs
