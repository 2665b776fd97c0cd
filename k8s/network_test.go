package k8s

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// selected returns the workloads sel selects; an empty selector selects
// every one.
func (t *target) selected(sel *metav1.LabelSelector) ([]workload, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	var out []workload
	for _, w := range t.m.workloads() {
		if s.Matches(labels.Set(w.labels)) {
			out = append(out, w)
		}
	}
	return out, nil
}

// podPort reports whether a container of w has the port, by name or
// number.
func podPort(w workload, port intstr.IntOrString) bool {
	for i := range w.pod.Containers {
		if hasPort(&w.pod.Containers[i], port) {
			return true
		}
	}
	return false
}

// checkSelectors: Services, PodDisruptionBudgets and topology spread
// constraints select pods that exist, Services target ports those pods
// have, every HorizontalPodAutoscaler scales a Deployment that exists,
// and every cityhub Deployment has a PodDisruptionBudget.
func checkSelectors(t *target) []error {
	var errs []error
	for _, s := range t.m.services {
		if len(s.Spec.Selector) == 0 {
			errs = append(errs, fmt.Errorf("Service %s: no selector", s.Name))
			continue
		}
		ws, _ := t.selected(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(ws) == 0 {
			errs = append(errs, fmt.Errorf("Service %s: its selector %v selects no pod", s.Name, s.Spec.Selector))
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			for _, w := range ws {
				if !podPort(w, target) {
					errs = append(errs, fmt.Errorf("Service %s: port %s targets %s, which %s's containers do not have", s.Name, p.Name, target.String(), w))
				}
			}
		}
	}
	covered := map[string]bool{}
	for _, pdb := range t.m.pdbs {
		ws, err := t.selected(pdb.Spec.Selector)
		if err != nil || len(ws) == 0 {
			errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: selects no pod", pdb.Name))
		}
		for _, w := range ws {
			covered[w.String()] = true
		}
	}
	for _, w := range t.m.workloads() {
		if w.kind == "Deployment" && slices.ContainsFunc(w.pod.Containers, func(c corev1.Container) bool { return strings.HasPrefix(c.Image, koScheme) }) && !covered[w.String()] {
			errs = append(errs, fmt.Errorf("%s: no PodDisruptionBudget", w))
		}
		for _, tsc := range w.pod.TopologySpreadConstraints {
			s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || !s.Matches(labels.Set(w.labels)) {
				errs = append(errs, fmt.Errorf("%s: a topology spread constraint does not select the pods it spreads", w))
			}
		}
	}
	for _, h := range t.m.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || !slices.ContainsFunc(t.m.deployments, func(d *appsv1.Deployment) bool { return d.Name == ref.Name }) {
			errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: scales %s %s, which does not exist", h.Name, ref.Kind, ref.Name))
		}
		if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: minReplicas %d above maxReplicas %d", h.Name, *h.Spec.MinReplicas, h.Spec.MaxReplicas))
		}
	}
	return errs
}

// checkNetworkPolicies: ingress is denied by default; every policy
// selects pods that exist; a pod peer selects pods that exist; a named
// port is one the selected pods have.
func checkNetworkPolicies(t *target) []error {
	var errs []error
	if len(t.m.deployments) > 0 && !slices.ContainsFunc(t.m.netpols, isDefaultDeny) {
		errs = append(errs, errors.New("no default-deny policy: a NetworkPolicy selecting every pod, for Ingress, with no rules"))
	}
	for _, np := range t.m.netpols {
		ws, err := t.selected(&np.Spec.PodSelector)
		if err != nil || len(ws) == 0 {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s: selects no pod", np.Name))
			continue
		}
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.PodSelector == nil || peer.NamespaceSelector != nil {
					continue
				}
				if from, err := t.selected(peer.PodSelector); err != nil || len(from) == 0 {
					errs = append(errs, fmt.Errorf("NetworkPolicy %s: admits pods of a selector that selects none", np.Name))
				}
			}
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					continue
				}
				if !slices.ContainsFunc(ws, func(w workload) bool { return podPort(w, *p.Port) }) {
					errs = append(errs, fmt.Errorf("NetworkPolicy %s: port %s is not a port of the pods it selects", np.Name, p.Port.StrVal))
				}
			}
		}
	}
	return errs
}

func isDefaultDeny(np *networkingv1.NetworkPolicy) bool {
	return len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 &&
		slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(np.Spec.Ingress) == 0
}

// ingressController is the namespace of the ingress controller, as the
// NetworkPolicies expect it (k8s/README.md).
var ingressController = labels.Set{"kubernetes.io/metadata.name": "ingress-nginx"}

// fromIngressController reports whether some NetworkPolicy lets the
// ingress controller reach port of w; any port when port is nil.
func (t *target) fromIngressController(w workload, port *intstr.IntOrString) bool {
	for _, np := range t.m.netpols {
		s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !s.Matches(labels.Set(w.labels)) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			peer := len(rule.From) == 0 || slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool {
				if p.NamespaceSelector == nil {
					return false
				}
				ns, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
				return err == nil && ns.Matches(ingressController)
			})
			onPort := port == nil || len(rule.Ports) == 0 || slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
				return p.Port == nil || namedPortNumber(w, *p.Port) == namedPortNumber(w, *port)
			})
			if peer && onPort {
				return true
			}
		}
	}
	return false
}

// namedPortNumber is the number of a port of w given by name or number,
// or 0.
func namedPortNumber(w workload, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, c := range w.pod.Containers {
		for _, p := range c.Ports {
			if p.Name == port.StrVal {
				return p.ContainerPort
			}
		}
	}
	return -1
}

// ingressOrigins returns the origins the Ingresses serve, as a browser
// names them.
func (t *target) ingressOrigins() []string {
	var out []string
	for _, ing := range t.m.ingresses {
		for _, rule := range ing.Spec.Rules {
			scheme := "http"
			if slices.ContainsFunc(ing.Spec.TLS, func(tls networkingv1.IngressTLS) bool { return slices.Contains(tls.Hosts, rule.Host) }) {
				scheme = "https"
			}
			out = append(out, scheme+"://"+rule.Host)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkIngress: every path leads to a Service port that exists, whose
// pods a NetworkPolicy opens to the ingress controller, and the
// controller reaches no other pod; every host has
// its certificate or none; and the services that must know the public
// origin know it: the gateway allows it for the websocket, and notify
// writes it into the acknowledgement links.
func checkIngress(t *target) []error {
	var errs []error
	public := map[string]bool{}
	for _, ing := range t.m.ingresses {
		for _, tls := range ing.Spec.TLS {
			for _, h := range tls.Hosts {
				if !slices.ContainsFunc(ing.Spec.Rules, func(r networkingv1.IngressRule) bool { return r.Host == h }) {
					errs = append(errs, fmt.Errorf("Ingress %s: TLS for %s, which no rule serves", ing.Name, h))
				}
			}
		}
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				if b == nil {
					errs = append(errs, fmt.Errorf("Ingress %s: path %s has no Service backend", ing.Name, p.Path))
					continue
				}
				i := slices.IndexFunc(t.m.services, func(s *corev1.Service) bool { return s.Name == b.Name })
				if i < 0 {
					errs = append(errs, fmt.Errorf("Ingress %s: path %s leads to Service %s, which does not exist", ing.Name, p.Path, b.Name))
					continue
				}
				svc := t.m.services[i]
				j := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				})
				if j < 0 {
					errs = append(errs, fmt.Errorf("Ingress %s: path %s leads to a port Service %s does not have", ing.Name, p.Path, b.Name))
					continue
				}
				target := svc.Spec.Ports[j].TargetPort
				ws, _ := t.selected(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
				for _, w := range ws {
					public[w.String()] = true
					if !t.fromIngressController(w, &target) {
						errs = append(errs, fmt.Errorf("Ingress %s: path %s leads to %s, but no NetworkPolicy lets the ingress controller reach its port %s", ing.Name, p.Path, w, target.String()))
					}
				}
			}
		}
	}
	for _, w := range t.m.workloads() {
		if !public[w.String()] && t.fromIngressController(w, nil) {
			errs = append(errs, fmt.Errorf("%s: open to the ingress controller, but no Ingress path leads to it", w))
		}
	}
	origins := t.ingressOrigins()
	if len(origins) == 0 {
		return errs
	}
	t.cityhubContainers(func(w workload, c *corev1.Container, p *program) {
		env, _ := t.env(w, c)
		if p.env["CITYHUB_ALLOWED_ORIGINS"] {
			allowed := strings.Split(env["CITYHUB_ALLOWED_ORIGINS"].value, ",")
			for _, o := range origins {
				if !slices.Contains(allowed, o) {
					errs = append(errs, fmt.Errorf("%s: CITYHUB_ALLOWED_ORIGINS lacks %s, the Ingress's origin: the pages there could not open the websocket", where(w, c), o))
				}
			}
		}
		if p.env["CITYHUB_BASE_URL"] {
			if u := env["CITYHUB_BASE_URL"].value; !slices.Contains(origins, strings.TrimSuffix(u, "/")) {
				errs = append(errs, fmt.Errorf("%s: CITYHUB_BASE_URL %q is none of the Ingress's origins %v: the links in messages would lead elsewhere", where(w, c), u, origins))
			}
		}
	})
	return errs
}

// addresses are the settings that name servers, and how to read their
// host:port pairs.
var addresses = map[string]func(string) ([]string, error){
	"CITYHUB_KAFKA_BROKERS": func(v string) ([]string, error) { return strings.Split(v, ","), nil },
	"CITYHUB_MQTT_BROKER":   func(v string) ([]string, error) { return []string{v}, nil },
	"CITYHUB_REDIS_URL": func(v string) ([]string, error) {
		// The schemes redisclient.New takes.
		if rest, ok := strings.CutPrefix(v, "redis-cluster://"); ok {
			return strings.Split(rest, ","), nil
		}
		u, err := url.Parse(v)
		if err != nil {
			return nil, err
		}
		switch u.Scheme {
		case "unix":
			return nil, nil
		case "redis", "rediss":
			if u.Port() == "" {
				return []string{u.Hostname() + ":6379"}, nil
			}
			return []string{u.Host}, nil
		}
		return nil, fmt.Errorf("scheme %q: want redis, rediss, unix or redis-cluster", u.Scheme)
	},
}

// checkAddresses: in an overlay, a server named without a domain is in
// the namespace, so the manifests must make it: a Service with that port,
// or the bootstrap Service of a Strimzi Kafka with that listener.
func checkAddresses(t *target) []error {
	if !t.deployable {
		return nil // the base names no servers
	}
	var errs []error
	t.cityhubContainers(func(w workload, c *corev1.Container, p *program) {
		env, _ := t.env(w, c)
		for _, name := range sortedKeys(addresses) {
			s, ok := env[name]
			if !ok || !s.known {
				continue
			}
			hostports, err := addresses[name](s.value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", where(w, c), name, err))
				continue
			}
			for _, hp := range hostports {
				host, port, ok := strings.Cut(strings.TrimSpace(hp), ":")
				n, err := strconv.Atoi(port)
				if !ok || err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %q is not host:port", where(w, c), name, hp))
					continue
				}
				if !strings.Contains(host, ".") && !t.serves(host, int32(n)) {
					errs = append(errs, fmt.Errorf("%s: %s names %s:%d, which nothing here serves", where(w, c), name, host, n))
				}
			}
		}
	})
	return errs
}

// serves reports whether the manifests make a Service host with port, or
// a Strimzi Kafka whose bootstrap Service that is.
func (t *target) serves(host string, port int32) bool {
	for _, s := range t.m.services {
		if s.Name == host && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
			return true
		}
	}
	for _, k := range t.m.kafkas {
		if host == k.Name+"-kafka-bootstrap" && slices.ContainsFunc(k.Spec.Kafka.Listeners, func(l kafkaListener) bool { return l.Port == port }) {
			return true
		}
	}
	return false
}
