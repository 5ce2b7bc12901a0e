#!/usr/bin/env python3
"""Installs the chart into the test bed with the real Helm engine (helm-sdkpy).

The chart must install on a real kube-apiserver exactly as a user's `helm install` does;
only `rbac.readSecrets` is turned off, so the tests see what the operator can do without it,
and the Grafana dashboard is turned on.
"""
import argparse
import asyncio
import sys

import helm_sdkpy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--chart", required=True)
    args = parser.parse_args()
    config = helm_sdkpy.Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)
    # The dashboard ConfigMap is off by default; installed here so it is seen to render.
    values = {"rbac": {"readSecrets": False}, "metrics": {"grafanaDashboard": {"enabled": True}}}
    try:
        result = asyncio.run(
            helm_sdkpy.Install(config).run(
                args.release, args.chart, values=values, create_namespace=True, wait=False
            )
        )
    except helm_sdkpy.HelmError as error:
        print(f"helm install {args.chart}: {error}", file=sys.stderr)
        return 1
    info = result.get("info", {}) if isinstance(result, dict) else {}
    print(f"helm install {args.release}: {info.get('status', 'done')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
