-- Argo CD health of a cutover.dev Rollout: Healthy once fully promoted and available,
-- Suspended while it waits for a person, Degraded when aborted, degraded or invalid.
local hs = {}
local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on the Rollout"
  return hs
end
local status = obj.status
local invalid = condition(status, "InvalidSpec")
if invalid ~= nil and invalid.status == "True" then
  hs.status = "Degraded"
  hs.message = "InvalidSpec: " .. (invalid.message or "")
  return hs
end
if obj.metadata.generation ~= nil and status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local message = status.message or ""
if status.phase == "Healthy" then
  hs.status = "Healthy"
  hs.message = message ~= "" and message or "Fully promoted and available"
elseif status.phase == "Aborted" then
  hs.status = "Degraded"
  hs.message = "Aborted: " .. message
elseif status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message
elseif status.phase == "Paused" or (obj.spec ~= nil and obj.spec.paused == true) then
  hs.status = "Suspended"
  hs.message = message ~= "" and message or "Paused"
else
  hs.status = "Progressing"
  hs.message = message ~= "" and message or "Rolling out"
end
return hs
