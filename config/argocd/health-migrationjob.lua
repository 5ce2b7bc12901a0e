-- Argo CD health of a cutover.dev MigrationJob: Healthy once it succeeded for its current
-- spec, Degraded when it failed, was rolled back or is invalid.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on the MigrationJob"
  return hs
end
local status = obj.status
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "InvalidSpec" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = "InvalidSpec: " .. (c.message or "")
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
if status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message ~= "" and message or "Succeeded"
elseif status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. message
elseif status.phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Rolled back: " .. message
else
  hs.status = "Progressing"
  hs.message = (status.phase or "Pending") .. (message ~= "" and (": " .. message) or "")
end
return hs
