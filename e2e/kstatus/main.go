// Command kstatus reads one Kubernetes object as JSON on stdin and prints its status as
// the kstatus library (sigs.k8s.io/cli-utils, what Flux and kpt use) computes it:
// `STATUS: message`, where STATUS is Current, InProgress, Failed, ...
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
	// Unstructured's own decoder keeps integers as int64, as the API machinery expects.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: not a Kubernetes object:", err)
		os.Exit(1)
	}
	result, err := status.Compute(obj)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %s\n", result.Status, result.Message)
}
