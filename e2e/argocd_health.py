#!/usr/bin/env python3
"""Runs an Argo CD health check (config/argocd/health-<kind>.lua) with Lua 5.1 over one
object read as JSON from stdin, as Argo CD's gopher-lua does: the object is the global
`obj`, the chunk returns a table with `status` and `message`. Prints `STATUS: MESSAGE`.

usage: kubectl get cro web -o json | e2e/argocd_health.py rollout
"""
import json
import os
import subprocess
import sys


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
        escaped = (
            value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        )
        return '"' + escaped + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    return "{" + ", ".join("[" + lua(k) + "] = " + lua(v) for k, v in value.items()) + "}"


def main():
    kind = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "config", "argocd", f"health-{kind}.lua")) as f:
        chunk = f.read()
    obj = json.load(sys.stdin)
    program = (
        f"obj = {lua(obj)}\n"
        f"local hs = (function()\n{chunk}\nend)()\n"
        'io.write(tostring(hs.status) .. ": " .. tostring(hs.message) .. "\\n")\n'
    )
    result = subprocess.run(["lua5.1", "-"], input=program, text=True, capture_output=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit(result.returncode)
    sys.stdout.write(result.stdout)


if __name__ == "__main__":
    main()
