#!/usr/bin/env python3
"""Lints a Helm chart with the real Helm engine (helm-sdkpy's Lint action).

Prints every message; exits 1 when Helm reports an error (severity 3) or a warning
(severity 2), 0 otherwise.
"""
import asyncio
import sys

import helm_sdkpy

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def main(path: str) -> int:
    result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(path))
    failed = bool(result.get("Errors"))
    for message in result.get("Messages") or []:
        severity = message.get("Severity", 0)
        print(f"{SEVERITY.get(severity, severity)}: {message.get('Path')}: {message.get('Err')}")
        failed |= severity >= 2
    for error in result.get("Errors") or []:
        print(f"ERROR: {error}")
    print(f"helm lint {path}: {'failed' if failed else 'ok'} "
          f"({result.get('TotalChartsLinted', 0)} chart(s))")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "charts/cutover"))
