package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type upOptions struct {
	dir, kubeconfig, bin, gatewayCRDs string
	nodes                             int
}

// controllers run by kube-controller-manager: all but those that need a cloud, node
// heartbeats (the fake nodes post none) or CIDR allocation.
const controllers = "*,-node-lifecycle-controller,-node-ipam-controller,-taint-eviction-controller," +
	"-device-taint-eviction-controller,-persistentvolume-attach-detach-controller"

func up(o upOptions) error {
	began := time.Now()
	var err error
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	if o.kubeconfig, err = filepath.Abs(o.kubeconfig); err != nil {
		return err
	}
	if running := alive(o.dir); len(running) > 0 {
		return fmt.Errorf("%s already runs %s; run `down --dir %s` first", o.dir, strings.Join(running, ", "), o.dir)
	}
	for _, sub := range []string{"pki", "etcd", "logs"} {
		_ = os.RemoveAll(filepath.Join(o.dir, sub))
	}
	_ = os.Remove(filepath.Join(o.dir, "pids"))
	if err := os.MkdirAll(filepath.Join(o.dir, "logs"), 0o755); err != nil {
		return err
	}
	certs, err := newPKI(filepath.Join(o.dir, "pki"))
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}

	etcdURL, err := startEtcd(o)
	if err != nil {
		return err
	}
	say("etcd serving on %s", etcdURL)

	server, err := startAPIServer(o, certs, etcdURL)
	if err != nil {
		return err
	}
	if err := certs.kubeconfig(o.kubeconfig, server, "admin"); err != nil {
		return err
	}
	config, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	if err := poll(90*time.Second, "kube-apiserver /readyz", o.dir, "kube-apiserver", func() (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err == nil && strings.TrimSpace(string(body)) == "ok", nil
	}); err != nil {
		return err
	}
	say("kube-apiserver ready on %s", server)

	kcmConfig := filepath.Join(o.dir, "kube-controller-manager.kubeconfig")
	if err := certs.kubeconfig(kcmConfig, server, "kube-controller-manager"); err != nil {
		return err
	}
	if err := start(o.dir, "kube-controller-manager", filepath.Join(o.bin, "kube-controller-manager"),
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig,
		"--authorization-kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers="+controllers,
		"--service-account-private-key-file="+certs.path("sa.key"),
		"--root-ca-file="+certs.path("ca.crt"),
		"--cluster-signing-cert-file="+certs.path("ca.crt"),
		"--cluster-signing-key-file="+certs.path("ca.key"),
		"--use-service-account-credentials=false",
		"--horizontal-pod-autoscaler-sync-period=5s",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--concurrent-job-syncs=10",
		"--concurrent-gc-syncs=20",
		"--v=1",
	); err != nil {
		return err
	}
	// The service-account controller creating `default` proves the controllers run.
	if err := poll(60*time.Second, "kube-controller-manager", o.dir, "kube-controller-manager", func() (bool, error) {
		_, err := client.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	say("kube-controller-manager running")

	agentConfig := filepath.Join(o.dir, "nodeagent.kubeconfig")
	if err := certs.kubeconfig(agentConfig, server, "nodeagent"); err != nil {
		return err
	}
	if err := start(o.dir, "nodeagent", filepath.Join(o.bin, "nodeagent"),
		"--kubeconfig="+agentConfig, "--nodes="+strconv.Itoa(o.nodes),
		"--port-file="+filepath.Join(o.dir, "kubelet.port")); err != nil {
		return err
	}
	if err := poll(60*time.Second, "fake nodes Ready", o.dir, "nodeagent", func() (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= o.nodes, nil
	}); err != nil {
		return err
	}
	say("%d fake nodes Ready", o.nodes)

	if o.gatewayCRDs != "" {
		count, err := installCRDs(config, o.gatewayCRDs)
		if err != nil {
			return fmt.Errorf("Gateway API CRDs: %w", err)
		}
		say("%d Gateway API CRDs established", count)
	}
	fmt.Printf("cluster ready: server %s, kubeconfig %s, started in %.1fs\n", server, o.kubeconfig, time.Since(began).Seconds())
	return nil
}

func startEtcd(o upOptions) (string, error) {
	var lastErr error
	for range 3 {
		client, peer := freePort(), freePort()
		url := fmt.Sprintf("http://127.0.0.1:%d", client)
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
		if err := start(o.dir, "etcd", filepath.Join(o.bin, "etcd"),
			"--name=cutover-test",
			"--data-dir="+filepath.Join(o.dir, "etcd"),
			"--listen-client-urls="+url, "--advertise-client-urls="+url,
			"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=cutover-test="+peerURL,
			"--listen-metrics-urls=",
			"--unsafe-no-fsync",
			"--quota-backend-bytes=8589934592",
			"--log-level=warn",
		); err != nil {
			return "", err
		}
		lastErr = poll(30*time.Second, "etcd health", o.dir, "etcd", func() (bool, error) {
			resp, err := http.Get(url + "/health")
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == 200 && bytes.Contains(body, []byte(`"health":"true"`)), nil
		})
		if lastErr == nil {
			return url, nil
		}
		// A port taken between choosing and binding: try other ports.
		stop(o.dir, "etcd")
	}
	return "", lastErr
}

// operatorUser is the identity the test bed's operator runs as (the chart's ServiceAccount).
const operatorUser = "system:serviceaccount:cutover-system:cutover"

func startAPIServer(o upOptions, certs *pki, etcdURL string) (string, error) {
	auditPolicy := filepath.Join(o.dir, "audit-policy.yaml")
	policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n" +
		"- level: Metadata\n  users: [\"" + operatorUser + "\"]\n- level: None\n"
	if err := os.WriteFile(auditPolicy, []byte(policy), 0o644); err != nil {
		return "", err
	}
	var lastErr error
	for range 3 {
		port := freePort()
		if err := start(o.dir, "kube-apiserver", filepath.Join(o.bin, "kube-apiserver"),
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// Loopback may not back the `kubernetes` Service; nothing in the tests needs it.
			"--endpoint-reconciler-type=none",
			"--secure-port="+strconv.Itoa(port),
			"--tls-cert-file="+certs.path("apiserver.crt"),
			"--tls-private-key-file="+certs.path("apiserver.key"),
			"--client-ca-file="+certs.path("ca.crt"),
			"--kubelet-client-certificate="+certs.path("apiserver-kubelet-client.crt"),
			"--kubelet-client-key="+certs.path("apiserver-kubelet-client.key"),
			"--kubelet-preferred-address-types=InternalIP",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file="+certs.path("sa.pub"),
			"--service-account-signing-key-file="+certs.path("sa.key"),
			"--api-audiences=https://kubernetes.default.svc.cluster.local",
			"--authorization-mode=RBAC",
			"--service-cluster-ip-range=10.0.0.0/16",
			"--allow-privileged=true",
			"--profiling=false",
			// The operator's own requests, as the apiserver counts them (bench scale).
			"--audit-policy-file="+auditPolicy,
			"--audit-log-path="+filepath.Join(o.dir, "logs", "audit.log"),
			"--audit-log-format=json",
			"--v=1",
		); err != nil {
			return "", err
		}
		server := fmt.Sprintf("https://127.0.0.1:%d", port)
		lastErr = poll(20*time.Second, "kube-apiserver to listen", o.dir, "kube-apiserver", func() (bool, error) {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err != nil {
				return false, nil
			}
			_ = conn.Close()
			return true, nil
		})
		if lastErr == nil {
			return server, nil
		}
		stop(o.dir, "kube-apiserver")
	}
	return "", lastErr
}

// installCRDs creates every CustomResourceDefinition in the YAML files of dir and waits
// until each is Established.
func installCRDs(config *rest.Config, dir string) (int, error) {
	client, err := apiextensions.NewForConfig(config)
	if err != nil {
		return 0, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return 0, err
	}
	var names []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := decoder.Decode(&crd); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return 0, fmt.Errorf("%s: %w", file, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			_, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), &crd, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return 0, fmt.Errorf("%s: %w", crd.Name, err)
			}
			names = append(names, crd.Name)
		}
	}
	for _, name := range names {
		err := poll(30*time.Second, name+" established", "", "", func() (bool, error) {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// start runs a component in its own session, logging to DIR/logs/NAME.log, and records
// its pid so `down` stops exactly it.
func start(dir, name, path string, args ...string) error {
	logFile, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	pids, err := os.OpenFile(filepath.Join(dir, "pids"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer pids.Close()
	_, err = fmt.Fprintf(pids, "%s %d\n", name, cmd.Process.Pid)
	// The component outlives this command; release it so no zombie is left behind.
	_ = cmd.Process.Release()
	return err
}

// poll calls check until it is true or timeout passes; when component's process has
// died, it fails at once with the end of the component's log.
func poll(timeout time.Duration, what, dir, component string, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if component != "" {
			if pid, found := pidOf(dir, component); found && !running(pid) {
				return fmt.Errorf("%s exited while waiting for %s:\n%s", component, what, tail(filepath.Join(dir, "logs", component+".log"), 30))
			}
		}
		if time.Now().After(deadline) {
			log := ""
			if component != "" {
				log = "\n" + tail(filepath.Join(dir, "logs", component+".log"), 30)
			}
			return fmt.Errorf("timed out after %s waiting for %s%s", timeout, what, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort() int {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

func tail(path string, lines int) string {
	file, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer file.Close()
	var all []string
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1024*1024), 1024*1024)
	for scanner.Scan() {
		all = append(all, scanner.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cluster: "+format+"\n", args...)
}
