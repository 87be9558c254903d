-- Argo CD health of a DeepTrainingJob, from the conditions the operator writes (phase only
-- mirrors them). Runs in Argo CD's Lua 5.1 sandbox (base and table libraries only): `obj` is the
-- live object.
local hs = {status = "Progressing", message = "Waiting for the operator"}

local status = obj.status
if status == nil then
  return hs
end

-- Status written for an older spec says nothing about the current one.
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

local function progress()
  local p = status.progress
  if p == nil or p.epoch == nil or p.epochs == nil then
    return ""
  end
  local text = " (epoch " .. p.epoch .. "/" .. p.epochs
  if p.percent ~= nil then
    text = text .. ", " .. p.percent .. "%"
  end
  return text .. ")"
end

-- Most decisive first: a terminal outcome outranks a suspension, which outranks activity.
local order = {
  {type = "Failed", health = "Degraded"},
  {type = "Succeeded", health = "Healthy"},
  {type = "Suspended", health = "Suspended"},
  {type = "Restarting", health = "Progressing"},
  {type = "Running", health = "Progressing"},
  {type = "Queued", health = "Progressing"},
  {type = "Created", health = "Progressing"},
}

for _, entry in ipairs(order) do
  local condition = byType[entry.type]
  if condition ~= nil and condition.status == "True" then
    hs.status = entry.health
    if entry.type == "Failed" then
      hs.message = describe(condition)
    elseif entry.type == "Running" or entry.type == "Restarting" then
      hs.message = entry.type .. progress() .. ": " .. describe(condition)
    else
      hs.message = entry.type .. ": " .. describe(condition)
    end
    return hs
  end
end

hs.message = "Waiting for the operator to set a condition"
return hs
