package k8s

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// koScheme marks an image that ko builds from a Go import path.
const koScheme = "ko://"

// target is one rendered kustomization and what it is checked against.
type target struct {
	m *manifests
	r *repo
	// deployable: an overlay, which must say where Kafka and Redis are.
	deployable bool
	// readme is k8s/README.md, which must say how to make each Secret the
	// manifests refer to but do not carry.
	readme string
}

// checks are run on every kustomization; each returns every problem it
// finds, each naming the object at fault.
var checks = []struct {
	name string
	run  func(*target) []error
}{
	{"probes", checkProbes},
	{"resources", checkResources},
	{"security context", checkSecurity},
	{"images", checkImages},
	{"environment", checkEnv},
	{"files", checkFiles},
	{"selectors", checkSelectors},
	{"network policies", checkNetworkPolicies},
	{"ingress", checkIngress},
	{"addresses", checkAddresses},
	{"kafka topics", checkTopics},
	{"secrets", checkSecrets},
}

// problems runs every check.
func (t *target) problems() []error {
	var out []error
	for _, c := range checks {
		for _, err := range c.run(t) {
			out = append(out, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return out
}

// containers calls f for every container and init container of every
// workload.
func (t *target) containers(f func(w workload, c *corev1.Container)) {
	for _, w := range t.m.workloads() {
		for i := range w.pod.InitContainers {
			f(w, &w.pod.InitContainers[i])
		}
		for i := range w.pod.Containers {
			f(w, &w.pod.Containers[i])
		}
	}
}

// cityhubContainers calls f for the containers that run a program of this
// repository, with that program.
func (t *target) cityhubContainers(f func(w workload, c *corev1.Container, p *program)) {
	t.containers(func(w workload, c *corev1.Container) {
		if p, ok := strings.CutPrefix(c.Image, koScheme); ok {
			f(w, c, t.r.program(p))
		}
	})
}

func where(w workload, c *corev1.Container) string {
	return fmt.Sprintf("%s, container %s", w, c.Name)
}

// checkProbes: cityhub's containers are live on /healthz and ready on
// /readyz, on a port they have; every other container has both probes.
func checkProbes(t *target) []error {
	var errs []error
	for _, w := range t.m.workloads() {
		for i := range w.pod.Containers {
			c := &w.pod.Containers[i]
			for _, p := range []struct {
				kind, path string
				probe      *corev1.Probe
			}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
				switch {
				case p.probe == nil:
					errs = append(errs, fmt.Errorf("%s: no %s probe", where(w, c), p.kind))
				case !strings.HasPrefix(c.Image, koScheme):
				case p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path:
					errs = append(errs, fmt.Errorf("%s: the %s probe must GET %s", where(w, c), p.kind, p.path))
				case !hasPort(c, p.probe.HTTPGet.Port):
					errs = append(errs, fmt.Errorf("%s: the %s probe's port %s is not one of the container's", where(w, c), p.kind, p.probe.HTTPGet.Port.String()))
				}
			}
		}
	}
	return errs
}

// hasPort reports whether c has the port, by name or number.
func hasPort(c *corev1.Container, port intstr.IntOrString) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		if port.Type == intstr.String {
			return p.Name == port.StrVal
		}
		return p.ContainerPort == port.IntVal
	})
}

// checkResources: every container requests CPU and memory and is limited
// in both, each request within its limit.
func checkResources(t *target) []error {
	var errs []error
	t.containers(func(w workload, c *corev1.Container) {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[res]
			lim, hasLim := c.Resources.Limits[res]
			switch {
			case !hasReq:
				errs = append(errs, fmt.Errorf("%s: no %s request", where(w, c), res))
			case !hasLim:
				errs = append(errs, fmt.Errorf("%s: no %s limit", where(w, c), res))
			case req.Cmp(lim) > 0:
				errs = append(errs, fmt.Errorf("%s: %s request %s above its limit %s", where(w, c), res, req.String(), lim.String()))
			}
		}
	})
	return errs
}

// checkSecurity: every pod runs as a numeric non-root user under the
// runtime's seccomp profile, and every container keeps to that, on a
// read-only root file system, without privilege escalation and with
// every capability dropped.
func checkSecurity(t *target) []error {
	var errs []error
	for _, w := range t.m.workloads() {
		ps := w.pod.SecurityContext
		switch {
		case ps == nil:
			errs = append(errs, fmt.Errorf("%s: no pod securityContext", w))
			continue
		case ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot:
			errs = append(errs, fmt.Errorf("%s: the pod's securityContext lacks runAsNonRoot: true", w))
		case ps.RunAsUser == nil || *ps.RunAsUser == 0:
			errs = append(errs, fmt.Errorf("%s: the pod's securityContext lacks a numeric, non-root runAsUser", w))
		case ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			errs = append(errs, fmt.Errorf("%s: the pod's securityContext lacks seccompProfile RuntimeDefault", w))
		}
	}
	t.containers(func(w workload, c *corev1.Container) {
		sc := c.SecurityContext
		if sc == nil {
			errs = append(errs, fmt.Errorf("%s: no securityContext", where(w, c)))
			return
		}
		bad := func(what string) { errs = append(errs, fmt.Errorf("%s: securityContext %s", where(w, c), what)) }
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("lacks allowPrivilegeEscalation: false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("lacks readOnlyRootFilesystem: true")
		}
		if sc.Privileged != nil && *sc.Privileged {
			bad("is privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			bad("does not drop ALL capabilities")
		} else if len(sc.Capabilities.Add) > 0 {
			bad(fmt.Sprintf("adds capabilities %v", sc.Capabilities.Add))
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			bad("lacks runAsNonRoot: true")
		}
		if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			bad("lacks a numeric, non-root runAsUser")
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			bad("lacks seccompProfile RuntimeDefault")
		}
	})
	return errs
}

// checkImages: a ko:// image names a main package of this repository that
// builds; any other image is pinned to a tag or digest.
func checkImages(t *target) []error {
	var errs []error
	t.containers(func(w workload, c *corev1.Container) {
		if p, ok := strings.CutPrefix(c.Image, koScheme); ok {
			if prog := t.r.program(p); prog.err != nil {
				errs = append(errs, fmt.Errorf("%s: image %s: %w", where(w, c), c.Image, prog.err))
			}
			return
		}
		ref := c.Image
		if i := strings.LastIndexByte(ref, '/'); i >= 0 {
			ref = ref[i+1:]
		}
		if !strings.Contains(ref, "@") && (!strings.Contains(ref, ":") || strings.HasSuffix(ref, ":latest")) {
			errs = append(errs, fmt.Errorf("%s: image %s: name a tag or a digest", where(w, c), c.Image))
		}
	})
	return errs
}

// createSecret finds how the README makes a Secret.
var createSecret = regexp.MustCompile(`kubectl(?: -n \S+)? create secret (?:generic|tls) ([a-z0-9-]+)`)

// checkSecrets: every Secret the manifests use but do not make is one
// k8s/README.md says how to make.
func checkSecrets(t *target) []error {
	documented := map[string]bool{}
	for _, m := range createSecret.FindAllStringSubmatch(t.readme, -1) {
		documented[m[1]] = true
	}
	used := map[string]string{}
	for _, w := range t.m.workloads() {
		for _, v := range w.pod.Volumes {
			switch {
			case v.Secret != nil:
				used[v.Secret.SecretName] = w.String()
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.Secret != nil {
						used[s.Secret.Name] = w.String()
					}
				}
			}
		}
		for _, c := range w.pod.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					used[e.ValueFrom.SecretKeyRef.Name] = w.String()
				}
			}
		}
	}
	for _, ing := range t.m.ingresses {
		for _, tls := range ing.Spec.TLS {
			used[tls.SecretName] = "Ingress " + ing.Name
		}
	}
	var errs []error
	for _, name := range sortedKeys(used) {
		if _, made := t.m.secrets[name]; !made && !documented[name] {
			errs = append(errs, fmt.Errorf("%s uses Secret %s, which k8s/README.md does not say how to create (kubectl create secret … %s)", used[name], name, name))
		}
	}
	return errs
}
