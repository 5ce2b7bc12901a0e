-- Argo CD resource action "promote" of a cutover.dev Rollout: goes past the current pause or analysis step.
-- Each request is a new annotation value, so the operator acts on it once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["cutover.dev/promote"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
