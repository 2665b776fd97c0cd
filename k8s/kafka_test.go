package k8s

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Strimzi objects, as far as the overlays use them. Decoding is
// strict, so a misspelt or misplaced field fails here as the operator's
// schema would refuse it.
type (
	kafka struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Kafka struct {
				Version   string            `json:"version,omitempty"`
				Listeners []kafkaListener   `json:"listeners"`
				Config    map[string]scalar `json:"config,omitempty"`
			} `json:"kafka"`
			EntityOperator *struct {
				TopicOperator *struct{} `json:"topicOperator,omitempty"`
				UserOperator  *struct{} `json:"userOperator,omitempty"`
			} `json:"entityOperator,omitempty"`
		} `json:"spec"`
	}
	kafkaListener struct {
		Name string `json:"name"`
		Port int32  `json:"port"`
		Type string `json:"type"`
		TLS  bool   `json:"tls"`
	}
	kafkaNodePool struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Replicas int32    `json:"replicas"`
			Roles    []string `json:"roles"`
			Storage  struct {
				Type    string `json:"type"`
				Volumes []struct {
					ID            int    `json:"id"`
					Type          string `json:"type"`
					Size          string `json:"size,omitempty"`
					DeleteClaim   bool   `json:"deleteClaim,omitempty"`
					KRaftMetadata string `json:"kraftMetadata,omitempty"`
				} `json:"volumes,omitempty"`
			} `json:"storage"`
		} `json:"spec"`
	}
	kafkaTopic struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			TopicName  string            `json:"topicName,omitempty"`
			Partitions int32             `json:"partitions"`
			Replicas   int32             `json:"replicas"`
			Config     map[string]scalar `json:"config,omitempty"`
		} `json:"spec"`
	}
)

// name is the topic's name in Kafka: topicName, else the object's name.
func (t *kafkaTopic) name() string {
	if t.Spec.TopicName != "" {
		return t.Spec.TopicName
	}
	return t.Name
}

// scalar is a value of a Kafka config map: a string, number or bool.
type scalar string

func (s *scalar) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		*s = scalar(v)
	case float64, bool:
		*s = scalar(strings.TrimSpace(string(b)))
	default:
		return fmt.Errorf("want a string, number or bool, got %s", b)
	}
	return nil
}

// checkTopics: where the manifests run Kafka, every topic the services
// use is made, on a cluster that exists, with no more replicas than
// brokers and a min.insync.replicas no higher than its replicas (else
// every write would wait for replicas that cannot be).
func checkTopics(t *target) []error {
	if len(t.m.kafkas) == 0 && len(t.m.topics) == 0 {
		return nil
	}
	var errs []error
	want, err := t.r.topics()
	if err != nil {
		return []error{err}
	}
	brokers := map[string]int32{}
	for _, np := range t.m.nodePools {
		if slices.Contains(np.Spec.Roles, "broker") {
			brokers[np.Labels["strimzi.io/cluster"]] += np.Spec.Replicas
		}
	}
	made := map[string]bool{}
	for _, tp := range t.m.topics {
		made[tp.name()] = true
		cluster := tp.Labels["strimzi.io/cluster"]
		if !slices.ContainsFunc(t.m.kafkas, func(k *kafka) bool { return k.Name == cluster }) {
			errs = append(errs, fmt.Errorf("KafkaTopic %s: strimzi.io/cluster %q is no Kafka here", tp.Name, cluster))
			continue
		}
		if tp.Spec.Partitions < 1 {
			errs = append(errs, fmt.Errorf("KafkaTopic %s: no partitions", tp.Name))
		}
		if tp.Spec.Replicas < 1 || tp.Spec.Replicas > brokers[cluster] {
			errs = append(errs, fmt.Errorf("KafkaTopic %s: %d replicas on %d brokers", tp.Name, tp.Spec.Replicas, brokers[cluster]))
		}
		isr, err := strconv.Atoi(string(tp.Spec.Config["min.insync.replicas"]))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("KafkaTopic %s: config min.insync.replicas: want a number, have %q", tp.Name, tp.Spec.Config["min.insync.replicas"]))
		case isr < 1 || int32(isr) > tp.Spec.Replicas:
			errs = append(errs, fmt.Errorf("KafkaTopic %s: min.insync.replicas %d with %d replicas", tp.Name, isr, tp.Spec.Replicas))
		}
	}
	for _, name := range want {
		if !made[name] {
			errs = append(errs, fmt.Errorf("no KafkaTopic for %s, which the services use", name))
		}
	}
	return errs
}
