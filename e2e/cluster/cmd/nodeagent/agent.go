package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const (
	readyAfter   = "sim.cutover.dev/ready-after"
	neverReady   = "sim.cutover.dev/never-ready"
	crashLoop    = "sim.cutover.dev/crash-loop"
	runDuration  = "sim.cutover.dev/duration"
	failAttempts = "sim.cutover.dev/fail-attempts"
	logText      = "sim.cutover.dev/log"

	defaultReadyAfter = 2 * time.Second
	defaultDuration   = 2 * time.Second
	crashInterval     = 5 * time.Second
)

// agent keeps the fake nodes' pods moving through their lifecycle.
type agent struct {
	client kubernetes.Interface
	nodes  []string
	pods   listersv1.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]

	mu sync.Mutex
	// started holds when each pod (by uid) began running, and which attempt of its owner
	// it is; a kubelet keeps the same in memory.
	started map[types.UID]podRun
	nextIP  uint32
	serve   *responders
}

type podRun struct {
	at      time.Time
	attempt int
	ip      string
}

func newAgent(client kubernetes.Interface, nodes int) *agent {
	names := make([]string, nodes)
	for i := range names {
		names[i] = fmt.Sprintf("fake-node-%d", i)
	}
	return &agent{
		client:  client,
		nodes:   names,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		started: map[types.UID]podRun{},
		serve:   newResponders(),
	}
}

// registerNodes creates (or refreshes) the fake Nodes, Ready and reachable on port.
func (a *agent) registerNodes(ctx context.Context, port int) error {
	for _, name := range a.nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"type":                   "fake",
				},
			},
		}
		_, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("64"),
			corev1.ResourceMemory: resource.MustParse("256Gi"),
			corev1.ResourcePods:   resource.MustParse("2000"),
		}
		now := metav1.Now()
		status := corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "fake node agent is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion: "v0.0.0-cutover-nodeagent", OperatingSystem: "linux", Architecture: "amd64",
				ContainerRuntimeVersion: "fake://0",
			},
		}
		// Controllers annotate a new Node at once; write the status on the newest copy.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current, err := a.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			current.Status = status
			_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, current, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// run watches every pod and works the queue until ctx ends.
func (a *agent) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactory(a.client, 0)
	informer := factory.Core().V1().Pods()
	a.pods = informer.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			a.queue.Add(key)
		}
	}
	_, _ = informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for range 4 {
		go a.worker(ctx)
	}
	<-ctx.Done()
	a.queue.ShutDown()
}

func (a *agent) worker(ctx context.Context) {
	for {
		key, quit := a.queue.Get()
		if quit {
			return
		}
		after, err := a.sync(ctx, key)
		switch {
		case err != nil && apierrors.IsConflict(err):
			a.queue.AddRateLimited(key)
		case err != nil:
			klog.V(2).Infof("pod %s: %v", key, err)
			a.queue.AddRateLimited(key)
		default:
			a.queue.Forget(key)
			if after > 0 {
				a.queue.AddAfter(key, after)
			}
		}
		a.queue.Done(key)
	}
}

// sync moves one pod on; it returns when to look at the pod again.
func (a *agent) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := a.pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		a.serve.stop(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pods := a.client.CoreV1().Pods(namespace)
	if pod.DeletionTimestamp != nil {
		a.serve.stop(key)
		// The kubelet confirms a graceful deletion once the containers stopped.
		a.forget(pod.UID)
		zero := int64(0)
		err := pods.Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return 0, nil
		}
		return 0, err
	}
	if pod.Spec.NodeName == "" {
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: a.nodeFor(pod)},
		}
		return 0, pods.Bind(ctx, binding, metav1.CreateOptions{})
	}
	if !a.isOurs(pod.Spec.NodeName) {
		return 0, nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		a.serve.stop(key)
		return 0, nil
	}
	run := a.runOf(pod)
	status, after := desiredStatus(pod, run, time.Now())
	// Listening before the pod is reported ready, as a container's server would be.
	if status.Phase == corev1.PodRunning && pod.Annotations[crashLoop] != "true" {
		a.serve.ensure(key, pod, run.ip)
	} else {
		a.serve.stop(key)
	}
	if statusEqual(&pod.Status, status) {
		return after, nil
	}
	updated := pod.DeepCopy()
	updated.Status = *status
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return after, err
}

func (a *agent) isOurs(node string) bool {
	for _, n := range a.nodes {
		if n == node {
			return true
		}
	}
	return false
}

func (a *agent) nodeFor(pod *corev1.Pod) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(pod.Namespace + "/" + pod.Name))
	return a.nodes[int(h.Sum32())%len(a.nodes)]
}

func (a *agent) forget(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.started, uid)
}

// runOf returns when the pod started and which attempt of its owner it is: the number of
// its owner's pods that already failed when it started, as a Job's retries count them.
func (a *agent) runOf(pod *corev1.Pod) podRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	if run, ok := a.started[pod.UID]; ok {
		return run
	}
	run := podRun{at: time.Now(), attempt: a.failedSiblings(pod)}
	if pod.Status.PodIP != "" {
		run.ip = pod.Status.PodIP
	} else {
		// In the pod network the sim uses too. Never loopback: the API server refuses
		// loopback addresses in EndpointSlices, and a Service would have no endpoints.
		a.nextIP++
		run.ip = fmt.Sprintf("10.%d.%d.%d", 244+(a.nextIP>>16)&0x3, (a.nextIP>>8)&0xff, a.nextIP&0xff)
	}
	if pod.Status.StartTime != nil {
		run.at = pod.Status.StartTime.Time
	}
	a.started[pod.UID] = run
	return run
}

func (a *agent) failedSiblings(pod *corev1.Pod) int {
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return 0
	}
	siblings, err := a.pods.Pods(pod.Namespace).List(labels.Everything())
	if err != nil {
		return 0
	}
	failed := 0
	for _, s := range siblings {
		if s.UID == pod.UID || s.Status.Phase != corev1.PodFailed {
			continue
		}
		if o := metav1.GetControllerOf(s); o != nil && o.UID == owner.UID {
			failed++
		}
	}
	return failed
}

// desiredStatus is what a kubelet would report for the pod now, and when that changes next.
func desiredStatus(pod *corev1.Pod, run podRun, now time.Time) (*corev1.PodStatus, time.Duration) {
	annotations := pod.Annotations
	started := metav1.NewTime(run.at.Truncate(time.Second))
	status := &corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     run.ip,
		PodIPs:    []corev1.PodIP{{IP: run.ip}},
		StartTime: &started,
		QOSClass:  corev1.PodQOSBestEffort,
	}
	// Keep the transition times the pod already has, as a kubelet does.
	since := func(t corev1.PodConditionType, s corev1.ConditionStatus) metav1.Time {
		for _, c := range pod.Status.Conditions {
			if c.Type == t && c.Status == s {
				return c.LastTransitionTime
			}
		}
		return metav1.NewTime(now.Truncate(time.Second))
	}
	condition := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: since(t, s)}
	}
	elapsed := now.Sub(run.at)
	runToCompletion := pod.Spec.RestartPolicy != corev1.RestartPolicyAlways
	ready := false
	after := time.Duration(0)
	containerState := func(i int, c corev1.Container) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image,
			ContainerID: fmt.Sprintf("fake://%s-%d", pod.UID, i),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}
	}
	containers := make([]corev1.ContainerStatus, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		containers[i] = containerState(i, c)
	}

	switch {
	case runToCompletion:
		duration := durationOr(annotations[runDuration], defaultDuration)
		attempt := run.attempt
		restarts := int32(0)
		if pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure {
			// Failed runs restart inside the same pod.
			restarts = int32(min(int(elapsed/duration), failCount(annotations)))
			attempt += int(restarts)
		}
		finishAt := duration * time.Duration(restarts+1)
		if elapsed < finishAt {
			ready = true
			after = finishAt - elapsed
			for i := range containers {
				containers[i].RestartCount = restarts
				containers[i].Ready = true
				t := true
				containers[i].Started = &t
			}
			break
		}
		exit, reason := int32(0), "Completed"
		status.Phase = corev1.PodSucceeded
		if attempt < failCount(annotations) {
			exit, reason, status.Phase = 1, "Error", corev1.PodFailed
		}
		if status.Phase == corev1.PodFailed && pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure {
			// Still failing: the kubelet restarts the container again.
			status.Phase = corev1.PodRunning
			after = duration
			break
		}
		finished := metav1.NewTime(run.at.Add(finishAt).Truncate(time.Second))
		for i := range containers {
			containers[i].RestartCount = restarts
			containers[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: exit, Reason: reason, StartedAt: started, FinishedAt: finished,
				ContainerID: containers[i].ContainerID,
			}}
		}
	case annotations[crashLoop] == "true":
		restarts := int32(elapsed / crashInterval)
		after = crashInterval - elapsed%crashInterval
		for i := range containers {
			containers[i].RestartCount = restarts
			containers[i].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "CrashLoopBackOff", Message: "back-off restarting failed container",
			}}
			containers[i].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", StartedAt: started, FinishedAt: started,
			}}
		}
	case annotations[neverReady] == "true":
		for i := range containers {
			t := true
			containers[i].Started = &t
		}
	default:
		delay := durationOr(annotations[readyAfter], defaultReadyAfter)
		ready = elapsed >= delay
		if !ready {
			after = delay - elapsed
		}
		for i := range containers {
			containers[i].Ready = ready
			t := true
			containers[i].Started = &t
		}
	}
	if status.Phase != corev1.PodRunning {
		ready = false
	}
	reason := ""
	if !ready {
		reason = "ContainersNotReady"
	}
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		reason = "PodCompleted"
	}
	status.Conditions = []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, status.Phase == corev1.PodRunning, ""),
		condition(corev1.PodInitialized, true, ""),
		condition(corev1.PodReady, ready, reason),
		condition(corev1.ContainersReady, ready, reason),
		condition(corev1.PodScheduled, true, ""),
	}
	status.ContainerStatuses = containers
	return status, after
}

func failCount(annotations map[string]string) int {
	v := strings.TrimSpace(annotations[failAttempts])
	if v == "always" {
		return int(^uint(0) >> 1)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// durationOr parses the sim's duration annotations: Go durations ("5s", "1m30s") or
// plain seconds.
func durationOr(value string, fallback time.Duration) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return fallback
	}
	if d, err := time.ParseDuration(value); err == nil && d > 0 {
		return d
	}
	if s, err := strconv.ParseFloat(value, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	return fallback
}

// statusEqual compares what the agent writes, ignoring what the apiserver fills in.
func statusEqual(have *corev1.PodStatus, want *corev1.PodStatus) bool {
	if have.Phase != want.Phase || have.PodIP != want.PodIP || len(have.Conditions) != len(want.Conditions) ||
		len(have.ContainerStatuses) != len(want.ContainerStatuses) {
		return false
	}
	byType := map[corev1.PodConditionType]corev1.ConditionStatus{}
	for _, c := range have.Conditions {
		byType[c.Type] = c.Status
	}
	for _, c := range want.Conditions {
		if byType[c.Type] != c.Status {
			return false
		}
	}
	for i, c := range want.ContainerStatuses {
		h := have.ContainerStatuses[i]
		if h.Name != c.Name || h.Ready != c.Ready || h.RestartCount != c.RestartCount ||
			(h.State.Terminated == nil) != (c.State.Terminated == nil) ||
			(h.State.Waiting == nil) != (c.State.Waiting == nil) {
			return false
		}
	}
	return true
}
