-- Argo CD health of a cutover.dev FeatureFlag: Healthy once served as its spec says,
-- Progressing while its percentage steps, Degraded when the kill switch fired, its key is
-- taken by another flag, or it is invalid.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to render the FeatureFlag"
  return hs
end
local status = obj.status
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if (c.type == "InvalidSpec" or c.type == "Conflict") and c.status == "True" then
      hs.status = "Degraded"
      hs.message = c.type .. ": " .. (c.message or "")
      return hs
    end
  end
end
if obj.metadata.generation ~= nil and status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local message = status.message or ""
if status.phase == "Serving" or status.phase == "Disabled" then
  hs.status = "Healthy"
  hs.message = message
elseif status.phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Kill switch: " .. message
else
  hs.status = "Progressing"
  hs.message = message ~= "" and message or "Rolling out"
end
return hs
