package k8s

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// A pathSetting is a variable that names a file or directory a program
// reads, and what must be there.
type pathSetting struct {
	env string
	// file is the repository's file that must be at the path.
	file string
	// dir is the repository's directory whose files (only those of names,
	// when given) must be in the directory at the path.
	dir   string
	names []string
	// beside maps a directory beside file to the repository directory
	// whose files it must hold.
	beside map[string]string
	// secret: the path holds a secret, which must come from a Secret.
	secret bool
	// optional: the program runs without it.
	optional bool
	// reload: the program polls the path and takes what changes, so it
	// must be mounted from an object whose name stays put; otherwise it is
	// read at start and the name must change with the content, so that a
	// change rolls the pods.
	reload bool
}

var pathSettings = []pathSetting{
	// The catalog is watched too, but only for tokens: the rest of a
	// service keeps the catalog it started with.
	{env: "CITYHUB_CATALOG", file: "rules/catalog.yaml", beside: map[string]string{"calendar": "rules/calendar"}},
	{env: "CITYHUB_PACKS", dir: "rules/packs", reload: true},
	{env: "CITYHUB_NOTIFY_CONFIG", file: "rules/notify.yaml", reload: true},
	{env: "CITYHUB_ADAPTERS_DIR", dir: "rules/adapters", names: []string{"alertmanager.yaml", "cap.yaml"}},
	{env: "CITYHUB_DEVICES", file: "rules/adapters/devices.yaml", reload: true},
	{env: "CITYHUB_JWT_PUBLIC_KEY", secret: true},
	{env: "CITYHUB_ACK_KEY_FILE", secret: true},
	{env: "CITYHUB_MQTT_PASSWORD_FILE", secret: true, optional: true},
}

// rulesDirs are the rules' directories every file of which some service
// must be given: a new pack, year or mapping cannot be forgotten.
var rulesDirs = []string{"rules/packs", "rules/calendar", "rules/adapters"}

// mountedFile is a file a container sees, and where it comes from.
type mountedFile struct {
	kind, object, key string // kind ConfigMap or Secret
	data              *string
}

// fileTree is what a container's volume mounts show it.
type fileTree struct {
	files map[string]mountedFile
	// opaque holds the mount paths of Secrets made outside the manifests
	// and mounted whole: any file below is taken to come from them.
	opaque map[string]mountedFile
}

func (ft fileTree) lookup(p string) (mountedFile, bool) {
	p = path.Clean(p)
	if f, ok := ft.files[p]; ok {
		return f, true
	}
	for dir, f := range ft.opaque {
		if strings.HasPrefix(p, dir+"/") {
			f.key = strings.TrimPrefix(p, dir+"/")
			return f, true
		}
	}
	return mountedFile{}, false
}

// files returns what the container's mounts show it, and the problems
// of the mounts themselves: a key an item names that is not there, a
// subPath (which never sees an update), a mount inside another.
func (t *target) files(w workload, c *corev1.Container) (fileTree, []error) {
	ft := fileTree{files: map[string]mountedFile{}, opaque: map[string]mountedFile{}}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where(w, c)}, args...)...))
	}
	volumes := map[string]*corev1.Volume{}
	for i := range w.pod.Volumes {
		volumes[w.pod.Volumes[i].Name] = &w.pod.Volumes[i]
	}
	add := func(mountPath, kind, name string, items []corev1.KeyToPath, optional *bool) {
		var data map[string]string
		switch kind {
		case "ConfigMap":
			if cm, ok := t.m.configMaps[name]; ok {
				data = cm.Data
			}
		case "Secret":
			if s, ok := t.m.secrets[name]; ok {
				data = map[string]string{}
				for k, v := range s.Data {
					data[k] = string(v)
				}
				for k, v := range s.StringData {
					data[k] = v
				}
			}
		}
		if data == nil && kind == "ConfigMap" && (optional == nil || !*optional) {
			fail("mounts ConfigMap %s, which no manifest makes", name)
			return
		}
		if len(items) == 0 {
			if data == nil {
				ft.opaque[path.Clean(mountPath)] = mountedFile{kind: kind, object: name}
			}
			for k, v := range data {
				ft.files[path.Join(mountPath, k)] = mountedFile{kind: kind, object: name, key: k, data: &v}
			}
			return
		}
		for _, it := range items {
			f := mountedFile{kind: kind, object: name, key: it.Key}
			if data != nil {
				v, ok := data[it.Key]
				if !ok {
					fail("mounts key %s of %s %s, which has no such key", it.Key, kind, name)
					continue
				}
				f.data = &v
			}
			ft.files[path.Join(mountPath, it.Path)] = f
		}
	}
	for i, vm := range c.VolumeMounts {
		for _, other := range c.VolumeMounts[:i] {
			a, b := path.Clean(vm.MountPath), path.Clean(other.MountPath)
			if a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/") {
				fail("volume %s at %s and volume %s at %s: one mount inside another", vm.Name, vm.MountPath, other.Name, other.MountPath)
			}
		}
		v, ok := volumes[vm.Name]
		if !ok {
			fail("mounts volume %s, which the pod does not have", vm.Name)
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			fail("volume %s is mounted with a subPath, which never sees an update: mount the directory", vm.Name)
			continue
		}
		switch {
		case v.ConfigMap != nil:
			add(vm.MountPath, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
		case v.Secret != nil:
			add(vm.MountPath, "Secret", v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					add(vm.MountPath, "ConfigMap", s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional)
				case s.Secret != nil:
					add(vm.MountPath, "Secret", s.Secret.Name, s.Secret.Items, s.Secret.Optional)
				}
			}
		}
	}
	return ft, errs
}

// checkFiles: every file or directory a program's settings name is
// there, from the right kind of object, with the repository's content,
// and updates as the program expects (pathSettings); every file of the
// rules' directories reaches some program.
func checkFiles(t *target) []error {
	var errs []error
	reached := map[string]bool{}
	t.cityhubContainers(func(w workload, c *corev1.Container, p *program) {
		ft, mountErrs := t.files(w, c)
		errs = append(errs, mountErrs...)
		if p.err != nil {
			return
		}
		env, _ := t.env(w, c) // checkEnv reports its problems
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where(w, c)}, args...)...))
		}
		for _, ps := range pathSettings {
			if !p.env[ps.env] {
				continue
			}
			s, ok := env[ps.env]
			if !ok {
				if !ps.optional {
					fail("%s is not set, so %s would look for it relative to its working directory", ps.env, path.Base(p.importPath))
				}
				continue
			}
			if !s.known {
				fail("%s comes from %s, so the test cannot see where it points", ps.env, s.from)
				continue
			}
			want := func(at, repoFile string) {
				f, ok := ft.lookup(at)
				switch {
				case !ok:
					fail("%s: no volume provides %s (%s)", ps.env, at, repoFile)
					return
				case ps.secret && f.kind != "Secret":
					fail("%s: %s comes from %s %s; a secret belongs in a Secret", ps.env, at, f.kind, f.object)
					return
				case !ps.secret && f.kind != "ConfigMap":
					fail("%s: %s comes from %s %s, not the rules' ConfigMaps", ps.env, at, f.kind, f.object)
					return
				}
				if _, made := t.m.configMaps[f.object]; made || t.m.secrets[f.object] != nil {
					switch hashed := t.m.hashed[f.object]; {
					case ps.reload && hashed:
						fail("%s: %s %s has a hash suffix, so an edit makes a new object the running pods never see: disableNameSuffixHash", ps.env, f.kind, f.object)
					case !ps.reload && !hashed:
						fail("%s: %s %s is read at start but its name does not change with its content, so an edit never reaches running pods: keep its hash suffix", ps.env, f.kind, f.object)
					}
				}
				if repoFile == "" || f.data == nil {
					return
				}
				b, err := t.r.file(repoFile)
				if err != nil {
					fail("%v", err)
					return
				}
				if *f.data != string(b) {
					fail("%s: %s (key %s of %s) differs from %s", ps.env, at, f.key, f.object, repoFile)
					return
				}
				reached[repoFile] = true
			}
			switch {
			case ps.secret:
				want(s.value, "")
			case ps.file != "":
				want(s.value, ps.file)
				for sub, dir := range ps.beside {
					for _, rf := range t.r.glob(dir + "/*.yaml") {
						want(path.Join(path.Dir(s.value), sub, path.Base(rf)), rf)
					}
				}
			case ps.dir != "":
				names := ps.names
				if names == nil {
					for _, rf := range t.r.glob(ps.dir + "/*.y*ml") {
						names = append(names, path.Base(rf))
					}
				}
				for _, n := range names {
					want(path.Join(s.value, n), ps.dir+"/"+n)
				}
			}
		}
	})
	if len(t.m.deployments) == 0 {
		return errs
	}
	for _, dir := range rulesDirs {
		for _, rf := range t.r.glob(dir + "/*") {
			if !reached[rf] {
				errs = append(errs, fmt.Errorf("%s reaches no service: generate it in rules/kustomization.yaml and mount it where a setting points", rf))
			}
		}
	}
	return errs
}
