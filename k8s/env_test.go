package k8s

import (
	"fmt"
	"maps"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// setting is the value a container gives an environment variable.
type setting struct {
	value string
	known bool   // false: from a Secret made outside the manifests
	from  string // where it comes from, for messages
}

// env returns the variables c sets, from env and envFrom, and the problems
// of their sources: a ConfigMap or Secret key that is not there, or one
// read at start from an object whose name does not change with its
// content (the kubelet never updates a running container's environment).
func (t *target) env(w workload, c *corev1.Container) (map[string]setting, []error) {
	out := map[string]setting{}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where(w, c)}, args...)...))
	}
	set := func(name string, s setting) {
		if prev, ok := out[name]; ok {
			fail("%s is set twice (%s, %s)", name, prev.from, s.from)
		}
		out[name] = s
	}
	rolls := func(name string) {
		if !t.m.hashed[name] {
			fail("the environment comes from %s, whose name does not change with its content: a change would never reach running pods (generate it, with its hash)", name)
		}
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := t.m.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				fail("envFrom ConfigMap %s: no such ConfigMap", ef.ConfigMapRef.Name)
				continue
			}
			rolls(cm.Name)
			for k, v := range cm.Data {
				set(ef.Prefix+k, setting{value: v, known: true, from: "ConfigMap " + cm.Name})
			}
		case ef.SecretRef != nil:
			fail("envFrom Secret %s: name each variable with secretKeyRef, so that what the container gets can be checked", ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			set(e.Name, setting{value: e.Value, known: true, from: "env"})
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			cm, ok := t.m.configMaps[ref.Name]
			if !ok {
				fail("%s: no ConfigMap %s", e.Name, ref.Name)
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				fail("%s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			rolls(cm.Name)
			set(e.Name, setting{value: v, known: true, from: "ConfigMap " + cm.Name})
		case vf.SecretKeyRef != nil:
			ref := vf.SecretKeyRef
			if s, ok := t.m.secrets[ref.Name]; ok {
				if _, ok := s.Data[ref.Key]; !ok {
					if _, ok := s.StringData[ref.Key]; !ok {
						fail("%s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
					}
				}
				rolls(s.Name)
			}
			set(e.Name, setting{from: "Secret " + ref.Name})
		default:
			set(e.Name, setting{from: "the pod"})
		}
	}
	return out, errs
}

// required are the settings a deployable overlay must give every
// program that reads them: their defaults point at the machine itself.
var required = []string{"CITYHUB_KAFKA_BROKERS", "CITYHUB_REDIS_URL", "CITYHUB_MQTT_BROKER"}

// checkEnv: a cityhub container sets only variables its program reads —
// its flags' and its own, and for notify the {env: NAME} secrets of the
// notify.yaml it is given, every one of which it must set (notify refuses
// a file whose secrets it cannot resolve).
func checkEnv(t *target) []error {
	var errs []error
	t.cityhubContainers(func(w workload, c *corev1.Container, p *program) {
		env, envErrs := t.env(w, c)
		errs = append(errs, envErrs...)
		if p.err != nil {
			return // checkImages says why
		}
		reads := maps.Clone(p.env)
		if s, ok := env["CITYHUB_NOTIFY_CONFIG"]; ok && p.env["CITYHUB_NOTIFY_CONFIG"] {
			refs, err := t.notifyEnvRefs(w, c, s.value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where(w, c), err))
			}
			for _, name := range refs {
				reads[name] = true
				if _, ok := env[name]; !ok {
					errs = append(errs, fmt.Errorf("%s: notify.yaml takes a secret from %s, which the container does not set: notify would refuse the file", where(w, c), name))
				}
			}
		}
		for _, name := range sortedKeys(env) {
			if !reads[name] {
				errs = append(errs, fmt.Errorf("%s: sets %s (from %s), which %s never reads", where(w, c), name, env[name].from, path.Base(p.importPath)))
			}
		}
		if t.deployable {
			for _, name := range required {
				if _, ok := env[name]; p.env[name] && !ok {
					errs = append(errs, fmt.Errorf("%s: %s is not set", where(w, c), name))
				}
			}
		}
	})
	return errs
}

// notifyEnvRefs reads the notify.yaml that the container sees at file.
func (t *target) notifyEnvRefs(w workload, c *corev1.Container, file string) ([]string, error) {
	fs, _ := t.files(w, c)
	f, ok := fs.lookup(file)
	if !ok || f.data == nil {
		return nil, nil // checkFiles reports it
	}
	refs, err := envRefs([]byte(*f.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return refs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
