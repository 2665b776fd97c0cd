package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// kustomizations are what this folder ships; the overlays must be
// deployable as they are.
var kustomizations = []struct {
	dir        string
	deployable bool
}{
	{"base", false},
	{"overlays/dev", true},
	{"overlays/prod", true},
}

var (
	binDir     string
	sharedRepo = sync.OnceValue(func() *repo {
		root, err := filepath.Abs("..")
		if err != nil {
			panic(err)
		}
		return newRepo(root, binDir)
	})
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "cityhub-k8s-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// readme is k8s/README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// koPaths returns the import paths of the ko:// images of ms.
func koPaths(ms ...*manifests) []string {
	var out []string
	for _, m := range ms {
		for _, w := range m.workloads() {
			for _, c := range w.pod.Containers {
				if p, ok := strings.CutPrefix(c.Image, koScheme); ok {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// renderAll renders every kustomization and builds every program their
// images name, in one go build.
func renderAll(t *testing.T, r *repo) []*manifests {
	t.Helper()
	rendered := make([]*manifests, len(kustomizations))
	for i, k := range kustomizations {
		m, err := render(k.dir)
		if err != nil {
			t.Fatalf("%s: %v", k.dir, err)
		}
		rendered[i] = m
	}
	if err := r.load(koPaths(rendered...)...); err != nil {
		t.Fatal(err)
	}
	return rendered
}

// TestManifests renders the base and every overlay and holds each to
// every check.
func TestManifests(t *testing.T) {
	r := sharedRepo()
	doc := readme(t)
	rendered := renderAll(t, r)
	for i, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			t.Parallel()
			tg := &target{m: rendered[i], r: r, deployable: k.deployable, readme: doc}
			for _, err := range tg.problems() {
				t.Error(err)
			}
		})
	}
}

// TestChecksCatchBreakage breaks the manifests one way at a time, in a
// kustomization of its own over the base or the dev overlay, and asks
// that the checks say so: a check that cannot fail proves nothing.
func TestChecksCatchBreakage(t *testing.T) {
	r := sharedRepo()
	doc := readme(t)
	renderAll(t, r)
	base, err := filepath.Abs("base")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := filepath.Abs("overlays/dev")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		over string // the kustomization broken
		// kustomization is added to the broken kustomization, and
		// resource (objects) to its resources; files are written beside
		// it, "@path" standing for the repository's file.
		kustomization string
		resource      string
		files         map[string]string
		noReadme      bool
		want          string
	}{
		{
			name: "readiness probe missing",
			over: base,
			kustomization: jsonPatch("Deployment", "ruler",
				`{op: remove, path: /spec/template/spec/containers/0/readinessProbe}`),
			want: "Deployment ruler, container ruler: no readiness probe",
		},
		{
			name: "liveness probe on another path",
			over: base,
			kustomization: jsonPatch("Deployment", "live",
				`{op: replace, path: /spec/template/spec/containers/0/livenessProbe/httpGet/path, value: /health}`),
			want: "container live: the liveness probe must GET /healthz",
		},
		{
			name: "unknown field",
			over: base,
			kustomization: jsonPatch("Deployment", "intake",
				`{op: add, path: /spec/template/spec/containers/0/imagePullPolcy, value: Always}`),
			want: `unknown field "spec.template.spec.containers[0].imagePullPolcy"`,
		},
		{
			name: "a variable nobody reads",
			over: base,
			kustomization: jsonPatch("Deployment", "dispatch",
				`{op: add, path: /spec/template/spec/containers/0/env, value: [{name: CITYHUB_RULER_GROUP, value: cityhub-ruler}]}`),
			want: "sets CITYHUB_RULER_GROUP (from env), which dispatch never reads",
		},
		{
			name: "a receiver's secret not set",
			over: base,
			kustomization: smPatch(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: notify}
spec:
  template:
    spec:
      containers:
        - name: notify
          env:
            - {name: CITYHUB_SMTP_PASSWORD, $patch: delete}`),
			want: "notify.yaml takes a secret from CITYHUB_SMTP_PASSWORD, which the container does not set",
		},
		{
			name: "a setting that names a file not set",
			over: base,
			kustomization: jsonPatch("Deployment", "ruler",
				`{op: remove, path: /spec/template/spec/containers/0/env}`),
			want: "CITYHUB_PACKS is not set",
		},
		{
			name: "no memory limit",
			over: base,
			kustomization: jsonPatch("Deployment", "live",
				`{op: remove, path: /spec/template/spec/containers/0/resources/limits/memory}`),
			want: "container live: no memory limit",
		},
		{
			name: "privilege escalation",
			over: base,
			kustomization: jsonPatch("Deployment", "intake",
				`{op: replace, path: /spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation, value: true}`),
			want: "container intake: securityContext lacks allowPrivilegeEscalation: false",
		},
		{
			name: "root user",
			over: base,
			kustomization: jsonPatch("Deployment", "notify",
				`{op: replace, path: /spec/template/spec/securityContext/runAsUser, value: 0}`),
			want: "Deployment notify: the pod's securityContext lacks a numeric, non-root runAsUser",
		},
		{
			name: "image of a package that is no program",
			over: base,
			kustomization: jsonPatch("Deployment", "dispatch",
				`{op: replace, path: /spec/template/spec/containers/0/image, value: "ko://github.com/cityhub/cityhub/services/platform/config"}`),
			want: "package config, not a main package",
		},
		{
			name: "a pack left out of the mount",
			over: base,
			kustomization: jsonPatch("Deployment", "ruler",
				`{op: add, path: /spec/template/spec/volumes/2/configMap/items, value: [{key: fire.yaml, path: fire.yaml}]}`),
			want: "CITYHUB_PACKS: no volume provides /etc/cityhub/packs/flood.yaml (rules/packs/flood.yaml)",
		},
		{
			name: "a year of the calendar not beside the catalog",
			over: base,
			kustomization: jsonPatch("Deployment", "intake",
				`{op: replace, path: /spec/template/spec/volumes/0/projected/sources/0/configMap/items/1/path, value: 2026.yaml}`),
			want: "no volume provides /etc/cityhub/catalog/calendar/2026.yaml",
		},
		{
			name: "a subPath, which never updates",
			over: base,
			kustomization: jsonPatch("Deployment", "notify",
				`{op: add, path: /spec/template/spec/containers/0/volumeMounts/2/subPath, value: notify.yaml}`),
			want: "volume notify is mounted with a subPath",
		},
		{
			name: "a mount inside another",
			over: base,
			kustomization: jsonPatch("Deployment", "intake",
				`{op: add, path: /spec/template/spec/containers/0/volumeMounts/-, value: {name: adapters, mountPath: /etc/cityhub/catalog/calendar}}`),
			want: "one mount inside another",
		},
		{
			name: "a hot-reloaded ConfigMap with a hash suffix",
			over: base,
			kustomization: `
configMapGenerator:
  - name: notify-hashed
    files: [notify.yaml]
` + jsonPatch("Deployment", "notify",
				`{op: replace, path: /spec/template/spec/volumes/2/configMap/name, value: notify-hashed}`),
			files: map[string]string{"notify.yaml": "@rules/notify.yaml"},
			want:  "CITYHUB_NOTIFY_CONFIG: ConfigMap notify-hashed-",
		},
		{
			name: "settings from a ConfigMap that never rolls the pods",
			over: base,
			kustomization: jsonPatch("Deployment", "live",
				`{op: add, path: /spec/template/spec/containers/0/envFrom/-, value: {configMapRef: {name: live-extra}}}`),
			resource: `
apiVersion: v1
kind: ConfigMap
metadata: {name: live-extra}
data: {CITYHUB_LOG_LEVEL: debug}
`,
			want: "the environment comes from live-extra, whose name does not change with its content",
		},
		{
			name: "a Service targets a port the pods do not have",
			over: base,
			kustomization: jsonPatch("Service", "dispatch",
				`{op: replace, path: /spec/ports/0/targetPort, value: metrics}`),
			want: "Service dispatch: port http targets metrics",
		},
		{
			name: "a NetworkPolicy that selects nothing",
			over: base,
			resource: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ruler-scrapes}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: rulr}}
  policyTypes: [Ingress]
`,
			want: "NetworkPolicy ruler-scrapes: selects no pod",
		},
		{
			name: "a public route the NetworkPolicies keep closed",
			over: base,
			kustomization: jsonPatch("Ingress", "cityhub",
				`{op: add, path: /spec/rules/0/http/paths/-, value: {path: /v1/mqtt, pathType: Exact, backend: {service: {name: mqttbridge, port: {name: http}}}}}`),
			want: "path /v1/mqtt leads to Deployment mqttbridge, but no NetworkPolicy lets the ingress controller reach its port http",
		},
		{
			name: "a pod open to the ingress controller with no route to it",
			over: base,
			kustomization: jsonPatch("NetworkPolicy", "from-ingress-controller",
				`{op: add, path: /spec/podSelector/matchExpressions/0/values/-, value: mqttbridge}`),
			want: "Deployment mqttbridge: open to the ingress controller, but no Ingress path leads to it",
		},
		{
			name: "a file of the rules no service is given",
			over: base,
			kustomization: `
patches:
  - target: {kind: Deployment, name: mqttbridge}
    patch: |-
      $patch: delete
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: any}
`,
			want: "rules/adapters/devices.yaml reaches no service",
		},
		{
			name: "the pages' origin not allowed",
			over: base,
			kustomization: jsonPatch("Deployment", "live",
				`{op: replace, path: /spec/template/spec/containers/0/env/0/value, value: "https://other.example"}`),
			want: "CITYHUB_ALLOWED_ORIGINS lacks https://cityhub.example",
		},
		{
			name: "acknowledgement links to another host",
			over: base,
			kustomization: jsonPatch("Deployment", "notify",
				`{op: replace, path: /spec/template/spec/containers/0/env/1/value, value: "http://cityhub.example"}`),
			want: `CITYHUB_BASE_URL "http://cityhub.example" is none of the Ingress's origins`,
		},
		{
			name:     "a Secret nobody is told to create",
			over:     base,
			noReadme: true,
			want:     "uses Secret cityhub-jwt, which k8s/README.md does not say how to create",
		},
		{
			name: "a topic more insistent than its replicas",
			over: dev,
			kustomization: jsonPatch("KafkaTopic", "city.cases.v1",
				`{op: replace, path: /spec/config/min.insync.replicas, value: 2}`),
			want: "KafkaTopic city.cases.v1: min.insync.replicas 2 with 1 replicas",
		},
		{
			name: "a topic not made",
			over: dev,
			kustomization: `
patches:
  - target: {kind: KafkaTopic, name: city.notifications.v1}
    patch: |-
      $patch: delete
      apiVersion: kafka.strimzi.io/v1beta2
      kind: KafkaTopic
      metadata: {name: any}
`,
			want: "no KafkaTopic for city.notifications.v1",
		},
		{
			name: "a Redis nothing serves",
			over: dev,
			kustomization: `
configMapGenerator:
  - name: cityhub-common
    behavior: merge
    literals: [CITYHUB_REDIS_URL=redis://redis-master:6379/0]
`,
			want: "CITYHUB_REDIS_URL names redis-master:6379, which nothing here serves",
		},
		{
			name: "Kafka not named",
			over: dev,
			kustomization: `
configMapGenerator:
  - name: cityhub-common
    behavior: replace
    literals:
      - CITYHUB_CATALOG=/etc/cityhub/catalog/catalog.yaml
      - CITYHUB_JWT_PUBLIC_KEY=/etc/cityhub/jwt/public.pem
      - CITYHUB_REDIS_URL=redis://redis:6379/0
`,
			want: "container ruler: CITYHUB_KAFKA_BROKERS is not set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// A kustomization outside the folder is named by a relative path.
			resources, err := filepath.Rel(dir, tt.over)
			if err != nil {
				t.Fatal(err)
			}
			if tt.resource != "" {
				write(t, filepath.Join(dir, "extra.yaml"), tt.resource)
				resources += ", extra.yaml"
			}
			write(t, filepath.Join(dir, "kustomization.yaml"),
				"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: ["+resources+"]\n"+tt.kustomization)
			for name, content := range tt.files {
				if from, ok := strings.CutPrefix(content, "@"); ok {
					b, err := os.ReadFile(filepath.Join("..", from))
					if err != nil {
						t.Fatal(err)
					}
					content = string(b)
				}
				write(t, filepath.Join(dir, name), content)
			}
			var problems []string
			m, err := render(dir)
			if err != nil {
				problems = append(problems, err.Error())
			}
			if m != nil {
				tg := &target{m: m, r: r, deployable: tt.over == dev, readme: doc}
				if tt.noReadme {
					tg.readme = ""
				}
				for _, p := range tg.problems() {
					problems = append(problems, p.Error())
				}
			}
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("no problem says %q; the checks said:\n%s", tt.want, strings.Join(problems, "\n"))
		})
	}
}

// jsonPatch is a kustomization's patches: with one JSON patch of the
// named object, each op a flow mapping.
func jsonPatch(kind, name string, ops ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "patches:\n  - target: {kind: %s, name: %s}\n    patch: |-\n", kind, name)
	for _, op := range ops {
		fmt.Fprintf(&b, "      - %s\n", op)
	}
	return b.String()
}

// smPatch is a kustomization's patches: with one strategic merge patch.
func smPatch(patch string) string {
	var b strings.Builder
	b.WriteString("patches:\n  - patch: |-\n")
	for line := range strings.Lines(strings.TrimPrefix(patch, "\n")) {
		b.WriteString("      " + line)
	}
	b.WriteString("\n")
	return b.String()
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
