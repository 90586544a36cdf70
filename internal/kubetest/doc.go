// Package kubetest is test support for the Kubernetes deployment
// (deploy/kubernetes): it renders the kustomize base with kustomize as
// scripts/deps.sh builds it, decodes every rendered object strictly into
// the k8s.io/api types (an unknown or misspelt field is an error), and
// derives the CRI pod and container configs that crictl runs from the
// DaemonSet's pod template, so that the node-agent test runs the pod the
// manifest describes instead of a second copy of it. Its tests check the
// manifests and run the node-agent image against containerd 2.4.
package kubetest
