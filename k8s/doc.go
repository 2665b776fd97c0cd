// Package k8s holds cityhub's Kubernetes manifests — a kustomize base and
// the dev and prod overlays — and, in its tests, the proof that they
// render, decode strictly and fit the services they run.
package k8s
