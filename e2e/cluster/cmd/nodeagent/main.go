// Command nodeagent stands in for the kubelets of a test control plane: it registers fake
// Nodes, binds pending pods to them, gives pods the status a kubelet would, and serves the
// kubelet's containerLogs endpoint so `kubectl logs` and the operator's log tails work
// through the real kube-apiserver.
//
// Pod-template annotations steer it exactly as they steer the sim's workload simulator:
//   - sim.cutover.dev/ready-after: 5s      time until a pod is ready (default 2s)
//   - sim.cutover.dev/never-ready: "true"  the pod runs but never becomes ready
//   - sim.cutover.dev/crash-loop: "true"   the container crash-loops, never ready
//   - sim.cutover.dev/duration: 30s        how long a run-to-completion pod runs (default 2s)
//   - sim.cutover.dev/fail-attempts: "2"   the first N attempts of a Job fail ("always": all)
//   - sim.cutover.dev/log: "..."           what the container's log holds
//   - sim.cutover.dev/error-rate: "8%"     the pod's responder fails that share of requests
//
// Each running pod answers HTTP on its address and container ports (serve.go): its name,
// revision and image as JSON, and its request counters at /metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the control plane")
	nodes := flag.Int("nodes", 3, "number of fake nodes")
	listen := flag.String("listen", "127.0.0.1:0", "address of the kubelet endpoint (logs)")
	portFile := flag.String("port-file", "", "file to write the kubelet endpoint's port to")
	flag.Parse()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodeagent: %v\n", err)
		os.Exit(1)
	}
	config.QPS = 200
	config.Burst = 400
	config.UserAgent = "cutover-nodeagent"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodeagent: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	agent := newAgent(client, *nodes)
	port, err := agent.serveKubelet(ctx, *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodeagent: kubelet endpoint: %v\n", err)
		os.Exit(1)
	}
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(fmt.Sprint(port)), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "nodeagent: %v\n", err)
			os.Exit(1)
		}
	}
	if err := agent.registerNodes(ctx, port); err != nil {
		fmt.Fprintf(os.Stderr, "nodeagent: registering nodes: %v\n", err)
		os.Exit(1)
	}
	klog.Infof("nodeagent: %d nodes registered, kubelet endpoint on port %d", *nodes, port)
	agent.run(ctx)
	// Give in-flight writes a moment on shutdown; nothing here must outlive the signal.
	time.Sleep(100 * time.Millisecond)
}
