-- Argo CD resource action "abort" of a cutover.dev Rollout: sends all traffic back to the stable revision.
-- Each request is a new annotation value, so the operator acts on it once.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["cutover.dev/abort"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
