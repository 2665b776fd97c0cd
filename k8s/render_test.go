package k8s

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/hasher"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// manifests are the objects one kustomization renders, each decoded into
// its own type.
type manifests struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	namespaces   []*corev1.Namespace
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	netpols      []*networkingv1.NetworkPolicy
	ingresses    []*networkingv1.Ingress
	kafkas       []*kafka
	nodePools    []*kafkaNodePool
	topics       []*kafkaTopic

	// hashed holds the ConfigMaps and Secrets whose names carry
	// kustomize's content hash, so that a change rolls their users.
	hashed map[string]bool
}

var renderMu sync.Mutex

// render builds the kustomization in dir, as `kustomize build` does, and
// decodes every object strictly: a field its type does not have, or a
// kind this package does not know, is an error.
func render(dir string) (*manifests, error) {
	// kustomize keeps its OpenAPI schema in globals (kustomize issue
	// 4824): one build at a time.
	renderMu.Lock()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	renderMu.Unlock()
	if err != nil {
		return nil, err
	}
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, hashed: map[string]bool{}}
	var errs []error
	for _, r := range rm.Resources() {
		if err := m.add(r); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err))
		}
	}
	return m, errors.Join(errs...)
}

// add decodes r into its type and files it.
func (m *manifests) add(r *resource.Resource) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	gvk := r.GetGvk()
	decode := func(v any) error { return strictUnmarshal(b, v) }
	switch gvk.ApiVersion() + " " + gvk.Kind {
	case "apps/v1 Deployment":
		return decodeInto(decode, &m.deployments)
	case "apps/v1 StatefulSet":
		return decodeInto(decode, &m.statefulSets)
	case "v1 Service":
		return decodeInto(decode, &m.services)
	case "v1 Namespace":
		return decodeInto(decode, &m.namespaces)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(decode, &m.pdbs)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return decodeInto(decode, &m.hpas)
	case "networking.k8s.io/v1 NetworkPolicy":
		return decodeInto(decode, &m.netpols)
	case "networking.k8s.io/v1 Ingress":
		return decodeInto(decode, &m.ingresses)
	case "kafka.strimzi.io/v1beta2 Kafka":
		return decodeInto(decode, &m.kafkas)
	case "kafka.strimzi.io/v1beta2 KafkaNodePool":
		return decodeInto(decode, &m.nodePools)
	case "kafka.strimzi.io/v1beta2 KafkaTopic":
		return decodeInto(decode, &m.topics)
	case "v1 ConfigMap":
		cm := new(corev1.ConfigMap)
		if err := decode(cm); err != nil {
			return err
		}
		m.configMaps[cm.Name] = cm
		m.hashed[cm.Name] = hasHashSuffix(r.Copy(), cm.Name)
		return nil
	case "v1 Secret":
		s := new(corev1.Secret)
		if err := decode(s); err != nil {
			return err
		}
		m.secrets[s.Name] = s
		m.hashed[s.Name] = hasHashSuffix(r.Copy(), s.Name)
		return nil
	}
	return fmt.Errorf("no type known for %s, %s: add one to render", gvk.ApiVersion(), gvk.Kind)
}

// decodeInto decodes a new T and appends it to list.
func decodeInto[T any](decode func(any) error, list *[]*T) error {
	v := new(T)
	if err := decode(v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// strictUnmarshal decodes JSON as the API server does with
// fieldValidation=Strict: unknown and duplicate fields are errors, and
// field names match exactly.
func strictUnmarshal(b []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(b, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// hasHashSuffix reports whether name is a generated name whose last part
// is kustomize's hash of the object under the name before it.
func hasHashSuffix(node *kyaml.RNode, name string) bool {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return false
	}
	if err := node.SetName(name[:i]); err != nil {
		return false
	}
	h, err := new(hasher.Hasher).Hash(node)
	return err == nil && h == name[i+1:]
}

// workloads are the pod templates of the Deployments and StatefulSets.
func (m *manifests) workloads() []workload {
	var out []workload
	for _, d := range m.deployments {
		out = append(out, workload{kind: "Deployment", name: d.Name, labels: d.Spec.Template.Labels, pod: &d.Spec.Template.Spec})
	}
	for _, s := range m.statefulSets {
		out = append(out, workload{kind: "StatefulSet", name: s.Name, labels: s.Spec.Template.Labels, pod: &s.Spec.Template.Spec})
	}
	return out
}

// workload is a pod template and what made it.
type workload struct {
	kind, name string
	labels     map[string]string
	pod        *corev1.PodSpec
}

func (w workload) String() string { return w.kind + " " + w.name }
