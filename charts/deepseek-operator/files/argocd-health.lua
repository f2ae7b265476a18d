-- Argo CD health of a DeepSeekDeployment (deepseek.serving.dev/v1alpha1), read from the status
-- the operator writes. Argo CD runs it with the whole object as `obj` (Lua 5.1, no os/io).
--   Progressing  no status yet, status.observedGeneration behind metadata.generation, or the
--                Progressing condition True (a first version starting, a rollout stepping)
--   Degraded     the Degraded condition True (invalid spec, no plan fits, a name taken, a child
--                refused, a failed or aborted rollout, a RayService failing), or nothing serves
--                while nothing is in progress
--   Suspended    a rollout paused by a pause step or an inconclusive analysis (phase Paused),
--                waiting for `dsd rollout promote` or `dsd rollout abort`
--   Healthy      Ready True and nothing in progress (or scaled to zero on purpose)
-- Generated copies: files/argocd-cm-snippet.yaml and docs/gitops.md (a test keeps them equal).
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, found in ipairs(status.conditions) do
    if found.type == kind then
      return found
    end
  end
  return nil
end

local function text(value, default)
  if value == nil or value == "" then
    return default
  end
  return tostring(value)
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    .. " (observed: " .. text(status.observedGeneration, "none") .. ")"
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = text(degraded.reason, "Degraded") .. ": " .. text(degraded.message, text(status.message, ""))
  return hs
end

if status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = text(status.message, "Rollout paused")
    .. " (continue: dsd rollout promote " .. obj.metadata.name
    .. "; roll back: dsd rollout abort " .. obj.metadata.name .. ")"
  return hs
end

local progressing = condition(status, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = text(status.message, text(progressing.message, "Progressing"))
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(status.message, text(ready.message, "Serving"))
  return hs
end

if status.desiredGroups == 0 and obj.spec ~= nil and obj.spec.autoscaling ~= nil
  and obj.spec.autoscaling.scaleToZero == true then
  hs.status = "Healthy"
  hs.message = "Scaled to zero groups: the first request starts one"
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = text(status.message, "Waiting for the operator to report readiness")
  return hs
end

hs.status = "Degraded"
hs.message = "Not serving: " .. text(ready.reason, "NotReady") .. ": " .. text(ready.message, text(status.message, ""))
return hs
