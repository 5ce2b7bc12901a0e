//go:build tools

// Package tools pins the control-plane commands this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	// The Gateway API CRDs the tests install come from this module's config/crd/standard.
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
