#!/usr/bin/env python3
"""Runs one of the Argo CD Lua chunks in config/argocd/ with Lua 5.1 over one object read
as JSON from stdin, as Argo CD's gopher-lua does: the object is the global `obj`.

  argocd_lua.py health KIND        prints `STATUS: MESSAGE` (health-KIND.lua)
  argocd_lua.py actions KIND       prints the enabled actions, one per line
                                   (actions-KIND-discovery.lua)
  argocd_lua.py action KIND NAME   prints the object the action returns, as JSON
                                   (action-KIND-NAME.lua)

usage: kubectl get cro web -o json | e2e/argocd_lua.py health rollout
"""
import json
import os
import subprocess
import sys

# Writes a Lua value as JSON: a table with keys 1..n is an array (an empty table an object,
# as Argo CD's own conversion does for metadata maps).
TO_JSON = r"""
local function to_json(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v == math.floor(v) then return string.format("%d", v) end
    return tostring(v)
  end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  end
  local n = #v
  local parts = {}
  if n > 0 then
    for i = 1, n do parts[#parts + 1] = to_json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do
    parts[#parts + 1] = to_json(tostring(k)) .. ":" .. to_json(x)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
"""


def lua(value):
    """The Lua literal of a JSON value; JSON null is nil, as Argo CD converts it."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # Lua 5.1 strings are bytes; anything but printable ASCII goes as a \ddd escape.
        escaped = "".join(
            chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else "\\%03d" % b
            for b in value.encode("utf-8")
        )
        return '"' + escaped + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    return "{" + ", ".join("[" + lua(k) + "] = " + lua(v) for k, v in value.items()) + "}"


def main():
    mode, kind = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    name = {
        "health": f"health-{kind}.lua",
        "actions": f"actions-{kind}-discovery.lua",
        "action": f"action-{kind}-{sys.argv[3] if len(sys.argv) > 3 else ''}.lua",
    }[mode]
    with open(os.path.join(root, "config", "argocd", name)) as f:
        chunk = f.read()
    show = {
        "health": 'io.write(tostring(result.status) .. ": " .. tostring(result.message) .. "\\n")',
        "actions": 'for k, a in pairs(result) do if not a.disabled then io.write(k .. "\\n") end end',
        "action": 'io.write(to_json(result) .. "\\n")',
    }[mode]
    program = (
        TO_JSON
        + f"obj = {lua(json.load(sys.stdin))}\n"
        + f"local result = (function()\n{chunk}\nend)()\n"
        + show
        + "\n"
    )
    run = subprocess.run(["lua5.1", "-"], input=program, text=True, capture_output=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(run.returncode)
    out = run.stdout
    if mode == "actions":
        out = "".join(sorted(out.splitlines(keepends=True)))
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
