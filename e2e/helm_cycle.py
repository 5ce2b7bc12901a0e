#!/usr/bin/env python3
"""Runs one Helm verb on the chart with the real Helm engine (helm-sdkpy), as a user's
`helm install|upgrade|uninstall` would, and prints the release's status."""
import argparse
import asyncio
import json
import sys

import helm_sdkpy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("verb", choices=["install", "upgrade", "uninstall"])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--chart")
    parser.add_argument("--values", default="{}", help="values as JSON")
    args = parser.parse_args()
    config = helm_sdkpy.Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)
    values = json.loads(args.values)
    try:
        if args.verb == "install":
            run = helm_sdkpy.Install(config).run(
                args.release, args.chart, values=values, create_namespace=True, wait=False
            )
        elif args.verb == "upgrade":
            # Not waiting for readiness, as the helm CLI does by default.
            run = helm_sdkpy.Upgrade(config).run(args.release, args.chart, values=values, wait=False)
        else:
            run = helm_sdkpy.Uninstall(config).run(args.release, wait=False)
        result = asyncio.run(run)
    except helm_sdkpy.HelmError as error:
        print(f"helm {args.verb} {args.release}: {error}", file=sys.stderr)
        return 1
    release = result.get("release", result) if isinstance(result, dict) else {}
    print(f"helm {args.verb} {args.release}: {release.get('info', {}).get('status', 'done')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
