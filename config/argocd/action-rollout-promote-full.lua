-- Argo CD resource action "promote-full" of a cutover.dev Rollout: skips every remaining step.
-- Each request is a new annotation value, so the operator acts on it once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["cutover.dev/promote-full"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
