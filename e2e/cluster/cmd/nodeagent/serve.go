package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

const (
	// errorRate makes a pod's responder fail that share of its requests with a 500:
	// "0.08" or "8%". Read on every request, so annotating a running pod takes effect at once.
	errorRate = "sim.cutover.dev/error-rate"

	// podNetwork is where pod addresses come from. The API server refuses loopback
	// addresses in EndpointSlices, so the range is made local to this machine instead
	// (a `local` route on lo, as AnyIP): every address in it accepts connections here.
	podNetwork = "10.244.0.0/14"
)

// responders runs one HTTP responder per running pod and container port, listening on the
// pod's address, so a Service's endpoints answer real requests.
type responders struct {
	mu     sync.Mutex
	byPod  map[string]*responder
	usable bool
}

// responder answers for one pod: its name, revision and image, a scripted share of
// failures, and Prometheus counters at /metrics.
type responder struct {
	servers []*http.Server
	info    atomic.Pointer[podInfo]
	served  atomic.Uint64
	ok      atomic.Uint64
	failed  atomic.Uint64
}

type podInfo struct {
	Pod       string  `json:"pod"`
	Namespace string  `json:"namespace"`
	Revision  string  `json:"revision"`
	Image     string  `json:"image"`
	ErrorRate float64 `json:"-"`
}

// newResponders makes the pod network local; without it (no privilege to add the route)
// pods still run, but nothing answers on their addresses.
func newResponders() *responders {
	r := &responders{byPod: map[string]*responder{}}
	out, err := exec.Command("ip", "route", "replace", "local", podNetwork, "dev", "lo").CombinedOutput()
	if err != nil {
		klog.Warningf("nodeagent: pod addresses will not answer: ip route replace local %s dev lo: %v: %s",
			podNetwork, err, strings.TrimSpace(string(out)))
		return r
	}
	r.usable = true
	return r
}

// ensure starts the pod's responders if it has none yet, and refreshes what they answer.
func (r *responders) ensure(key string, pod *corev1.Pod, ip string) {
	if !r.usable {
		return
	}
	info := infoOf(pod)
	r.mu.Lock()
	defer r.mu.Unlock()
	if existing, ok := r.byPod[key]; ok {
		existing.info.Store(info)
		return
	}
	resp := &responder{}
	resp.info.Store(info)
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			listener, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(int(p.ContainerPort))))
			if err != nil {
				klog.Warningf("nodeagent: pod %s port %d: %v", key, p.ContainerPort, err)
				continue
			}
			server := &http.Server{Handler: resp, ReadHeaderTimeout: 10 * time.Second}
			// gRPC arrives as HTTP/2 without TLS (h2c), as a gateway sends it to a backend.
			server.Protocols = new(http.Protocols)
			server.Protocols.SetHTTP1(true)
			server.Protocols.SetUnencryptedHTTP2(true)
			resp.servers = append(resp.servers, server)
			go func() {
				if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
					klog.V(2).Infof("nodeagent: pod %s responder: %v", key, err)
				}
			}()
		}
	}
	r.byPod[key] = resp
}

// stop closes the pod's responders, as its containers stopping would.
func (r *responders) stop(key string) {
	r.mu.Lock()
	resp, ok := r.byPod[key]
	delete(r.byPod, key)
	r.mu.Unlock()
	if !ok {
		return
	}
	for _, s := range resp.servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
}

func infoOf(pod *corev1.Pod) *podInfo {
	info := &podInfo{
		Pod:       pod.Name,
		Namespace: pod.Namespace,
		Revision:  pod.Labels["cutover.dev/revision"],
		ErrorRate: parseRate(pod.Annotations[errorRate]),
	}
	if len(pod.Spec.Containers) > 0 {
		info.Image = pod.Spec.Containers[0].Image
	}
	return info
}

// parseRate reads "0.08" or "8%" as a share in [0, 1]; anything else is 0.
func parseRate(value string) float64 {
	value = strings.TrimSpace(value)
	scale := 1.0
	if strings.HasSuffix(value, "%") {
		value, scale = strings.TrimSuffix(value, "%"), 100
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil || math.IsNaN(v) {
		return 0
	}
	return math.Min(math.Max(v/scale, 0), 1)
}

// ServeHTTP answers /metrics with the pod's counters and anything else with the pod's
// identity, failing the scripted share evenly: request n fails when floor(n·rate) grows.
func (resp *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	info := resp.info.Load()
	if req.URL.Path == "/metrics" {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP sim_http_requests_total Requests this pod answered, by status code.\n")
		fmt.Fprintf(w, "# TYPE sim_http_requests_total counter\n")
		fmt.Fprintf(w, "sim_http_requests_total{code=\"200\"} %d\n", resp.ok.Load())
		fmt.Fprintf(w, "sim_http_requests_total{code=\"500\"} %d\n", resp.failed.Load())
		return
	}
	n := resp.served.Add(1)
	fail := math.Floor(float64(n)*info.ErrorRate) > math.Floor(float64(n-1)*info.ErrorRate)
	w.Header().Set("X-Pod", info.Pod)
	w.Header().Set("X-Revision", info.Revision)
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/grpc") {
		resp.grpc(w, fail)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if fail {
		resp.failed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	} else {
		resp.ok.Add(1)
	}
	_ = json.NewEncoder(w).Encode(info)
}

// grpc answers any gRPC call with an empty message and status OK, or with status
// UNAVAILABLE (14) when the request is one of the scripted failures.
func (resp *responder) grpc(w http.ResponseWriter, fail bool) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(http.StatusOK)
	if fail {
		resp.failed.Add(1)
		w.Header().Set("Grpc-Status", "14")
		w.Header().Set("Grpc-Message", "scripted failure")
		return
	}
	resp.ok.Add(1)
	// One length-prefixed message: not compressed, zero bytes long.
	_, _ = w.Write([]byte{0, 0, 0, 0, 0})
	w.Header().Set("Grpc-Status", "0")
}
