// Command cluster starts and stops a real Kubernetes control plane on loopback for
// cutover's tests: etcd, kube-apiserver (TLS, RBAC, service-account tokens),
// kube-controller-manager and a fake-node agent, each a plain process.
//
//	cluster up   --dir DIR --kubeconfig FILE --bin BINDIR [--nodes N]
//	cluster down --dir DIR
//
// DIR holds one cluster's certificates, data, logs and pids, so two clusters can run side
// by side. `up` returns once /readyz is ok and the nodes are Ready, leaving the processes
// running; `down` stops exactly the processes `up` recorded.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "up":
		fs := flag.NewFlagSet("up", flag.ExitOnError)
		dir := fs.String("dir", "", "state directory of this cluster")
		kubeconfig := fs.String("kubeconfig", "", "where to write the admin kubeconfig")
		bin := fs.String("bin", "", "directory holding etcd, kube-apiserver, kube-controller-manager, nodeagent")
		nodes := fs.Int("nodes", 3, "fake nodes")
		gateway := fs.String("gateway-crds", "", "directory of Gateway API CRD manifests to install")
		_ = fs.Parse(os.Args[2:])
		if *dir == "" || *kubeconfig == "" || *bin == "" {
			usage()
		}
		if err := up(upOptions{dir: *dir, kubeconfig: *kubeconfig, bin: *bin, nodes: *nodes, gatewayCRDs: *gateway}); err != nil {
			fmt.Fprintf(os.Stderr, "cluster up: %v\n", err)
			_ = down(*dir)
			os.Exit(1)
		}
	case "down":
		fs := flag.NewFlagSet("down", flag.ExitOnError)
		dir := fs.String("dir", "", "state directory of this cluster")
		_ = fs.Parse(os.Args[2:])
		if *dir == "" {
			usage()
		}
		if err := down(*dir); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: %v\n", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cluster up --dir DIR --kubeconfig FILE --bin BINDIR [--nodes N] [--gateway-crds DIR]\n       cluster down --dir DIR")
	os.Exit(2)
}
