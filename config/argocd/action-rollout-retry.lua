-- Argo CD resource action "retry" of a cutover.dev Rollout: starts an aborted rollout again from its first step.
-- Each request is a new annotation value, so the operator acts on it once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["cutover.dev/retry"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
