-- Argo CD resource actions of a cutover.dev Rollout: which of promote, abort and retry
-- apply to it as it is, as `kubectl cutover` decides.
local actions = {}
local phase = ""
local revision_in_progress = false
if obj.status ~= nil then
  phase = obj.status.phase or ""
  revision_in_progress = obj.status.stableRevision ~= obj.status.currentRevision
end
actions["promote"] = {["disabled"] = not (phase == "Paused" or phase == "Progressing")}
actions["promote-full"] = {["disabled"] = not (phase == "Paused" or phase == "Progressing")}
actions["abort"] = {["disabled"] = phase == "Aborted" or not revision_in_progress}
actions["retry"] = {["disabled"] = phase ~= "Aborted"}
return actions
