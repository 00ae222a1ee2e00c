// Package kubernetes_test holds the manifests under deploy/kubernetes true:
// every YAML document decodes strictly into its Kubernetes (or KEDA) type,
// the base and the example overlay build with kustomize, and what they build
// agrees with pkg/config (every setting in the ConfigMap or the Secret, and a
// valid configuration in every container), the API's routes, the Dockerfile
// and the queues the workers take. It needs no cluster and no kustomize or
// kubectl binary: the overlays are built in process with kustomize's API.
package kubernetes_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomize "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/ragpipe/ragpipe/docs"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// The builds under test, and the repository root, relative to this package.
var builds = []string{"base", "overlays/example"}

const root = "../.."

// The binaries' paths in the image (the Dockerfile copies them there).
const (
	apiBinary     = "/usr/local/bin/api"
	workerBinary  = "/usr/local/bin/worker"
	ragctlBinary  = "/usr/local/bin/ragctl"
	imageRepo     = "ghcr.io/ragpipe/ragpipe"
	livenessPath  = "/healthz" // the process serves HTTP; checks no dependency
	readinessPath = "/readyz"  // Postgres, Redis and S3 answer
)

// podSettings are the ConfigMap keys of the base that differ from the
// compiled-in defaults, because a pod needs another value: an address every
// interface can reach, logs for a collector, migrations by the Job, and the
// services' in-cluster names instead of loopback.
var podSettings = map[string]bool{
	"RAGPIPE_HTTP_ADDR":    true,
	"RAGPIPE_LOG_FORMAT":   true,
	"RAGPIPE_AUTO_MIGRATE": true,
	"RAGPIPE_REDIS_ADDR":   true,
	"RAGPIPE_S3_ENDPOINT":  true,
}

// kinds are the resources the manifests may hold, by apiVersion and kind,
// each with the Go type it must decode into.
var kinds = map[string]func() metav1.Object{
	"apps/v1 Deployment":                     func() metav1.Object { return &appsv1.Deployment{} },
	"v1 Service":                             func() metav1.Object { return &corev1.Service{} },
	"v1 ConfigMap":                           func() metav1.Object { return &corev1.ConfigMap{} },
	"v1 Secret":                              func() metav1.Object { return &corev1.Secret{} },
	"v1 ServiceAccount":                      func() metav1.Object { return &corev1.ServiceAccount{} },
	"policy/v1 PodDisruptionBudget":          func() metav1.Object { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2 HorizontalPodAutoscaler": func() metav1.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"batch/v1 Job":                           func() metav1.Object { return &batchv1.Job{} },
	"keda.sh/v1alpha1 ScaledObject":          func() metav1.Object { return &scaledObject{} },
	"keda.sh/v1alpha1 TriggerAuthentication": func() metav1.Object { return &triggerAuthentication{} },
}

const kustomizationKind = "kustomize.config.k8s.io/v1beta1 Kustomization"

// TestManifestsDecodeStrictly reads every YAML document under
// deploy/kubernetes, patches included, into its type with unknown fields
// refused, and checks that each kustomization lists files that exist and
// leaves none of its directory's manifests out.
func TestManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		files = append(files, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range splitDocuments(b) {
			if typeOf(doc) == kustomizationKind {
				for _, p := range checkKustomization(t, path, doc) {
					listed[p] = true
				}
				continue
			}
			if _, err := decode(doc); err != nil {
				t.Errorf("%s, document %d: %v", path, i+1, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests found")
	}
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" && !listed[f] {
			t.Errorf("%s is in no kustomization: it would never be applied", f)
		}
	}
}

// checkKustomization decodes a kustomization strictly and returns the files
// it lists (resources that are files, and patches), each checked to exist.
func checkKustomization(t *testing.T, path string, doc []byte) []string {
	t.Helper()
	var k kustomize.Kustomization
	if err := k8syaml.UnmarshalStrict(doc, &k); err != nil {
		t.Errorf("%s: %v", path, err)
		return nil
	}
	dir := filepath.Dir(path)
	var out []string
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s lists resource %s: %v", path, r, err)
			continue
		}
		if !st.IsDir() {
			out = append(out, p)
		}
	}
	for _, p := range k.Patches {
		if (p.Path == "") == (p.Patch == "") {
			t.Errorf("%s: a patch wants a path or an inline patch", path)
			continue
		}
		if p.Path != "" {
			if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
				t.Errorf("%s lists patch %s: %v", path, p.Path, err)
			}
			out = append(out, filepath.Join(dir, p.Path))
		}
	}
	if len(k.Bases)+len(k.PatchesStrategicMerge)+len(k.PatchesJson6902)+len(k.Crds)+len(k.Components) > 0 {
		t.Errorf("%s uses fields this test does not follow (bases, patchesStrategicMerge, patchesJson6902, crds, components): use resources and patches", path)
	}
	return out
}

// TestBuilds builds the base and each overlay as kubectl apply -k would, and
// checks what they make.
func TestBuilds(t *testing.T) {
	t.Parallel()
	openapi := unauthenticatedGets(t)
	undispatched := undispatchedPredicate(t)
	for _, dir := range builds {
		// One build at a time: kustomize loads its OpenAPI schema lazily
		// into package variables, without a lock (a data race when two
		// builds start together).
		t.Run(dir, func(t *testing.T) {
			s := build(t, dir)
			s.checkSettings(t)
			cfgs := s.loadConfigs(t)
			s.checkPods(t, cfgs)
			s.checkAPI(t, cfgs, openapi)
			s.checkWorkers(t, cfgs)
			s.checkMigration(t, cfgs)
			s.checkKEDA(t, cfgs, undispatched)
			if dir == "base" {
				s.checkDefaults(t)
			}
		})
	}
}

// set is one build's resources by kind and name.
type set struct {
	deployments   map[string]*appsv1.Deployment
	services      map[string]*corev1.Service
	configMaps    map[string]*corev1.ConfigMap
	secrets       map[string]*corev1.Secret
	pdbs          map[string]*policyv1.PodDisruptionBudget
	hpas          map[string]*autoscalingv2.HorizontalPodAutoscaler
	jobs          map[string]*batchv1.Job
	scaledObjects map[string]*scaledObject
	triggerAuths  map[string]*triggerAuthentication
	// firstPhase holds "Kind name" of each object labelled to be applied
	// before the rest (phaseLabel).
	firstPhase map[string]bool
}

// phaseLabel marks what kubectl apply -l applies before the rest: the
// migration Job and what it needs.
const phaseLabel = "ragpipe.io/phase=migrate"

// build runs kustomize on dir and decodes its output strictly.
func build(t *testing.T, dir string) *set {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	s := &set{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		jobs: map[string]*batchv1.Job{}, scaledObjects: map[string]*scaledObject{},
		triggerAuths: map[string]*triggerAuthentication{}, firstPhase: map[string]bool{},
	}
	first, err := labels.Parse(phaseLabel)
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range splitDocuments(out) {
		o, err := decode(doc)
		if err != nil {
			t.Fatalf("built %s, document %d: %v", dir, i+1, err)
		}
		if first.Matches(labels.Set(o.GetLabels())) {
			s.firstPhase[strings.Fields(typeOf(doc))[1]+" "+o.GetName()] = true
		}
		switch o := o.(type) {
		case *appsv1.Deployment:
			s.deployments[o.Name] = o
		case *corev1.Service:
			s.services[o.Name] = o
		case *corev1.ConfigMap:
			s.configMaps[o.Name] = o
		case *corev1.Secret:
			s.secrets[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			s.pdbs[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			s.hpas[o.Name] = o
		case *batchv1.Job:
			s.jobs[o.Name] = o
		case *scaledObject:
			s.scaledObjects[o.Name] = o
		case *triggerAuthentication:
			s.triggerAuths[o.Name] = o
		}
	}
	return s
}

// container is one container of a Deployment or Job, with where it is.
type container struct {
	owner string // "Deployment ragpipe-api"
	pod   *corev1.PodSpec
	c     *corev1.Container
}

func (s *set) containers() []container {
	var out []container
	for _, name := range sortedKeys(s.deployments) {
		p := &s.deployments[name].Spec.Template.Spec
		for i := range p.Containers {
			out = append(out, container{"Deployment " + name, p, &p.Containers[i]})
		}
	}
	for _, name := range sortedKeys(s.jobs) {
		p := &s.jobs[name].Spec.Template.Spec
		for i := range p.Containers {
			out = append(out, container{"Job " + name, p, &p.Containers[i]})
		}
	}
	return out
}

// checkSettings: every container reads the one ConfigMap and the one
// Secret whole; together they hold each setting of config.Config exactly
// once; every variable a container sets is a setting; the Secret carries
// placeholders only.
func (s *set) checkSettings(t *testing.T) {
	if len(s.configMaps) != 1 || len(s.secrets) != 1 {
		t.Fatalf("want one ConfigMap and one Secret, got %d and %d", len(s.configMaps), len(s.secrets))
	}
	cm, sec := only(s.configMaps), only(s.secrets)
	want := []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}}},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: sec.Name}}},
	}
	settings := settings()
	for _, c := range s.containers() {
		if diff := cmp.Diff(want, c.c.EnvFrom); diff != "" {
			t.Errorf("%s, container %s: envFrom (-want +got):\n%s", c.owner, c.c.Name, diff)
		}
		for _, e := range c.c.Env {
			if _, ok := settings[e.Name]; !ok {
				t.Errorf("%s, container %s: env %s is not a setting of pkg/config", c.owner, c.c.Name, e.Name)
			}
			if e.ValueFrom != nil {
				t.Errorf("%s, container %s: env %s takes its value from elsewhere; put it in the ConfigMap or the Secret", c.owner, c.c.Name, e.Name)
			}
		}
	}
	if len(sec.Data) > 0 || len(sec.StringData) == 0 {
		t.Errorf("Secret %s: want stringData only, readable placeholders", sec.Name)
	}
	for k, v := range sec.StringData {
		if v != "" && !strings.Contains(v, "change-me") {
			t.Errorf("Secret %s: %s is not a placeholder (want change-me in it, or empty): real credentials do not belong in the repository", sec.Name, k)
		}
	}
	for name := range settings {
		_, inCM := cm.Data[name]
		_, inSecret := sec.StringData[name]
		switch {
		case inCM && inSecret:
			t.Errorf("%s is in both the ConfigMap and the Secret", name)
		case !inCM && !inSecret:
			t.Errorf("%s is in neither the ConfigMap nor the Secret", name)
		}
	}
	for _, keys := range []map[string]string{cm.Data, sec.StringData} {
		for k := range keys {
			if _, ok := settings[k]; !ok {
				t.Errorf("%s is not a setting of pkg/config", k)
			}
		}
	}
	for _, k := range []string{"RAGPIPE_URL", "RAGPIPE_API_KEY"} {
		if _, ok := cm.Data[k]; ok {
			t.Errorf("%s is a client setting (ragctl), not the services'", k)
		}
	}
}

// checkDefaults: the base ConfigMap holds each setting at its compiled-in
// default, but for those a pod needs otherwise.
func (s *set) checkDefaults(t *testing.T) {
	cm := only(s.configMaps)
	for name, f := range settings() {
		v, ok := cm.Data[name]
		if !ok || podSettings[name] {
			continue
		}
		if def := f.Tag.Get("envDefault"); v != def {
			t.Errorf("ConfigMap %s: %s is %q, the default is %q", cm.Name, name, v, def)
		}
	}
	for name := range podSettings {
		if _, ok := cm.Data[name]; !ok {
			t.Errorf("ConfigMap %s lacks %s, which a pod needs set", cm.Name, name)
		}
	}
}

// environ is the environment of c as the kubelet makes it: the ConfigMap
// and Secret it reads whole, in order, then its own env.
func (s *set) environ(c container) map[string]string {
	env := map[string]string{}
	for _, from := range c.c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil && s.configMaps[from.ConfigMapRef.Name] != nil:
			for k, v := range s.configMaps[from.ConfigMapRef.Name].Data {
				env[k] = v
			}
		case from.SecretRef != nil && s.secrets[from.SecretRef.Name] != nil:
			for k, v := range s.secrets[from.SecretRef.Name].StringData {
				env[k] = v
			}
		}
	}
	for _, e := range c.c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// loadConfigs loads the configuration of every container with config.Load,
// as the process would at start-up, keyed by owner.
func (s *set) loadConfigs(t *testing.T) map[string]config.Config {
	out := map[string]config.Config{}
	for _, c := range s.containers() {
		var environ []string
		for k, v := range s.environ(c) {
			environ = append(environ, k+"="+v)
		}
		cfg, err := config.Load(environ)
		if err != nil {
			t.Errorf("%s, container %s: %v", c.owner, c.c.Name, err)
			continue
		}
		out[c.owner] = cfg
	}
	return out
}

// checkPods: each pod runs as the image's unprivileged user on a read-only
// root with a /tmp of its own, one release of one image, a binary the image
// has; a Deployment's selector picks its own pods and no other's.
func (s *set) checkPods(t *testing.T, cfgs map[string]config.Config) {
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	built := regexp.MustCompile(`go build [^\n]*-o /out/ ([^\n]*)`).FindSubmatch(dockerfile)
	if built == nil || !bytes.Contains(dockerfile, []byte("COPY --from=build /out/ /usr/local/bin/")) {
		t.Fatal("the Dockerfile no longer builds the binaries into /out/ and copies them to /usr/local/bin/")
	}
	images := map[string]bool{}
	for _, c := range s.containers() {
		images[c.c.Image] = true
		if !strings.HasPrefix(c.c.Image, imageRepo+":") && !strings.HasPrefix(c.c.Image, imageRepo+"@") {
			t.Errorf("%s: image %s, want %s", c.owner, c.c.Image, imageRepo)
		}
		if len(c.c.Command) == 0 || !slices.Contains([]string{apiBinary, workerBinary, ragctlBinary}, c.c.Command[0]) {
			t.Errorf("%s: command %q runs none of the image's binaries", c.owner, c.c.Command)
		} else if bin := filepath.Base(c.c.Command[0]); !bytes.Contains(built[1], []byte("./cmd/"+bin)) {
			t.Errorf("%s: the Dockerfile does not build %s", c.owner, bin)
		}
		pod := c.pod
		if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: want runAsNonRoot", c.owner)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token it never uses", c.owner)
		}
		sc := c.c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s, container %s: want a read-only root, no privilege escalation, every capability dropped", c.owner, c.c.Name)
		}
		if c.c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s, container %s: no memory limit", c.owner, c.c.Name)
		}
		if c.c.Command[0] == ragctlBinary {
			continue
		}
		tmp := tmpVolume(pod, c.c)
		if tmp == nil {
			t.Errorf("%s: /tmp is not an emptyDir (the root filesystem is read-only; the worker stages uploads in /tmp)", c.owner)
		}
		cfg, ok := cfgs[c.owner]
		if !ok || c.c.Command[0] != workerBinary {
			continue
		}
		// The Go heap's soft limit must sit below the container's, and an
		// extraction worker's limit must hold every pdftotext at its cap.
		limit := c.c.Resources.Limits.Memory().Value()
		need := cfg.WorkerMemoryLimit
		if cfg.WorkerTakes("extract") {
			need += int64(cfg.WorkerConcurrency) * cfg.ExtractMaxMemory
			if tmp != nil && (tmp.SizeLimit == nil || tmp.SizeLimit.Value() < int64(cfg.WorkerConcurrency)*cfg.MaxUploadBytes) {
				t.Errorf("%s: /tmp must hold an upload per slot: %d × %d bytes", c.owner, cfg.WorkerConcurrency, cfg.MaxUploadBytes)
			}
		}
		if limit <= need {
			t.Errorf("%s: memory limit %s, want more than %s (RAGPIPE_WORKER_MEMORY_LIMIT_BYTES, plus a capped pdftotext per slot for extraction)",
				c.owner, c.c.Resources.Limits.Memory(), resource.NewQuantity(need, resource.BinarySI))
		}
	}
	if len(images) != 1 {
		t.Errorf("want one image for the API, the workers and the migration, got %v", sortedKeys(images))
	}
	for _, name := range sortedKeys(s.deployments) {
		d := s.deployments[name]
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("Deployment %s: selector %v: %v", name, d.Spec.Selector, err)
			continue
		}
		for _, other := range sortedKeys(s.deployments) {
			matches := sel.Matches(labels.Set(s.deployments[other].Spec.Template.Labels))
			if matches != (other == name) {
				t.Errorf("Deployment %s's selector matches the pods of %s: %v", name, other, matches)
			}
		}
	}
}

// tmpVolume returns the emptyDir mounted at /tmp in c, or nil.
func tmpVolume(pod *corev1.PodSpec, c *corev1.Container) *corev1.EmptyDirVolumeSource {
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/tmp" {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				return v.EmptyDir
			}
		}
	}
	return nil
}

// deploymentsRunning returns the Deployments whose container runs binary.
func (s *set) deploymentsRunning(binary string) []string {
	var out []string
	for _, name := range sortedKeys(s.deployments) {
		for _, c := range s.deployments[name].Spec.Template.Spec.Containers {
			if len(c.Command) > 0 && c.Command[0] == binary {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// checkAPI: one API Deployment listening on its container port, probed on
// routes the API serves without a key, selected by the Service and the
// PodDisruptionBudget, scaled by the HorizontalPodAutoscaler, and given more
// time to stop than its shutdown grace.
func (s *set) checkAPI(t *testing.T, cfgs map[string]config.Config, unauthenticated map[string]bool) {
	apis := s.deploymentsRunning(apiBinary)
	if len(apis) != 1 {
		t.Fatalf("want one API Deployment, got %v", apis)
	}
	d := s.deployments[apis[0]]
	cfg, ok := cfgs["Deployment "+d.Name]
	if !ok {
		return // its configuration failed to load, reported already
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil || (host != "0.0.0.0" && host != "") {
		t.Errorf("RAGPIPE_HTTP_ADDR is %q: in a pod the API must listen on every interface", cfg.HTTPAddr)
	}
	var httpPort *corev1.ContainerPort
	for i, p := range c.Ports {
		if strconv.Itoa(int(p.ContainerPort)) == port {
			httpPort = &c.Ports[i]
		}
	}
	if httpPort == nil {
		t.Fatalf("Deployment %s: no container port %s, where RAGPIPE_HTTP_ADDR listens", d.Name, port)
	}
	probes := []struct {
		name, want string
		p          *corev1.Probe
	}{
		{"liveness", livenessPath, c.LivenessProbe},
		{"readiness", readinessPath, c.ReadinessProbe},
		{"startup", livenessPath, c.StartupProbe},
	}
	for _, pr := range probes {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("Deployment %s: no %s probe over HTTP", d.Name, pr.name)
			continue
		}
		g := pr.p.HTTPGet
		if g.Path != pr.want {
			t.Errorf("Deployment %s: %s probe on %s, want %s", d.Name, pr.name, g.Path, pr.want)
		}
		if !unauthenticated[g.Path] {
			t.Errorf("Deployment %s: %s probe on %s, which docs/openapi.yaml has as no GET open without a key", d.Name, pr.name, g.Path)
		}
		if g.Port.String() != httpPort.Name && g.Port.IntValue() != int(httpPort.ContainerPort) {
			t.Errorf("Deployment %s: %s probe on port %s, the API listens on %s", d.Name, pr.name, g.Port.String(), port)
		}
	}
	checkGrace(t, "Deployment "+d.Name, pod, cfg)
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment %s sets replicas, which its HorizontalPodAutoscaler owns", d.Name)
	}
	apiPods := labels.Set(d.Spec.Template.Labels)
	selectsOnlyAPI := func(what string, sel labels.Selector) {
		t.Helper()
		if sel.Empty() || !sel.Matches(apiPods) {
			t.Errorf("%s does not select the API's pods", what)
		}
		for name, other := range s.deployments {
			if name != d.Name && sel.Matches(labels.Set(other.Spec.Template.Labels)) {
				t.Errorf("%s selects the pods of %s too", what, name)
			}
		}
	}
	if len(s.services) != 1 {
		t.Errorf("want one Service, got %d", len(s.services))
	}
	for _, svc := range s.services {
		selectsOnlyAPI("Service "+svc.Name, labels.SelectorFromSet(svc.Spec.Selector))
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.String() != httpPort.Name && p.TargetPort.IntValue() != int(httpPort.ContainerPort) {
				t.Errorf("Service %s: target port %s, the API listens on %s", svc.Name, p.TargetPort.String(), port)
			}
		}
	}
	if len(s.pdbs) != 1 {
		t.Errorf("want one PodDisruptionBudget, got %d", len(s.pdbs))
	}
	for _, pdb := range s.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", pdb.Name, err)
			continue
		}
		selectsOnlyAPI("PodDisruptionBudget "+pdb.Name, sel)
	}
	if len(s.hpas) != 1 {
		t.Errorf("want one HorizontalPodAutoscaler, got %d", len(s.hpas))
	}
	for _, h := range s.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != d.Name {
			t.Errorf("HorizontalPodAutoscaler %s scales %s %s, want Deployment %s", h.Name, ref.Kind, ref.Name, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HorizontalPodAutoscaler %s: want at least 2 replicas and a maximum above the minimum", h.Name)
		}
		if len(h.Spec.Metrics) == 0 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HorizontalPodAutoscaler %s: want it to scale on CPU", h.Name)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("Deployment %s: no CPU request, which a CPU utilisation target is a share of", d.Name)
	}
}

// checkGrace: the kubelet waits longer than the process's shutdown grace
// before it kills the container.
func checkGrace(t *testing.T, owner string, pod corev1.PodSpec, cfg config.Config) {
	t.Helper()
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds <= int64(cfg.ShutdownGrace.Seconds()) {
		t.Errorf("%s: terminationGracePeriodSeconds must exceed RAGPIPE_SHUTDOWN_GRACE (%s)", owner, cfg.ShutdownGrace)
	}
}

// checkWorkers: each worker Deployment takes valid classes, the classes are
// all taken and none twice, and workers, which serve no HTTP, expose no port
// and carry no probe.
func (s *set) checkWorkers(t *testing.T, cfgs map[string]config.Config) {
	workers := s.deploymentsRunning(workerBinary)
	takenBy := map[string]string{}
	for _, name := range workers {
		d := s.deployments[name]
		cfg, ok := cfgs["Deployment "+name]
		if !ok {
			continue
		}
		for _, q := range cfg.WorkerQueues {
			if other, dup := takenBy[q]; dup {
				t.Errorf("class %s is taken by both %s and %s: each class scales on its own", q, other, name)
			}
			takenBy[q] = name
		}
		checkGrace(t, "Deployment "+name, d.Spec.Template.Spec, cfg)
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas, which its ScaledObject owns", name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if len(c.Ports) > 0 || c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil {
				t.Errorf("Deployment %s: a worker serves no HTTP: no ports, no probes", name)
			}
		}
	}
	if diff := cmp.Diff(config.WorkerQueueNames, sortedBy(config.WorkerQueueNames, sortedKeys(takenBy))); diff != "" {
		t.Errorf("the worker Deployments do not take every class (-want +got):\n%s", diff)
	}
}

// checkMigration: one Job runs ragctl migrate, retried a few times and
// cleaned up, and the long-running processes leave migrating to it.
func (s *set) checkMigration(t *testing.T, cfgs map[string]config.Config) {
	if len(s.jobs) != 1 {
		t.Fatalf("want one Job (the migration), got %d", len(s.jobs))
	}
	j := only(s.jobs)
	spec := j.Spec.Template.Spec
	if len(spec.Containers) != 1 || !slices.Equal(spec.Containers[0].Command, []string{ragctlBinary, "migrate"}) {
		t.Errorf("Job %s: want one container running %s migrate", j.Name, ragctlBinary)
	}
	if j.Spec.BackoffLimit == nil || j.Spec.TTLSecondsAfterFinished == nil {
		t.Errorf("Job %s: want backoffLimit and ttlSecondsAfterFinished", j.Name)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("Job %s: restartPolicy %q", j.Name, spec.RestartPolicy)
	}
	want := map[string]bool{"Job " + j.Name: true}
	for _, from := range spec.Containers[0].EnvFrom {
		if from.ConfigMapRef != nil {
			want["ConfigMap "+from.ConfigMapRef.Name] = true
		}
		if from.SecretRef != nil {
			want["Secret "+from.SecretRef.Name] = true
		}
	}
	if spec.ServiceAccountName != "" {
		want["ServiceAccount "+spec.ServiceAccountName] = true
	}
	if diff := cmp.Diff(want, s.firstPhase); diff != "" {
		t.Errorf("kubectl apply -l %s must apply the Job and what it needs, and nothing else (-want +got):\n%s", phaseLabel, diff)
	}
	for owner, cfg := range cfgs {
		if strings.HasPrefix(owner, "Deployment ") && cfg.AutoMigrate {
			t.Errorf("%s migrates at start-up: the Job does that (RAGPIPE_AUTO_MIGRATE=false)", owner)
		}
	}
}

// redisFromEnv are the trigger parameters each Redis trigger type must
// read from the workers' own settings, so KEDA watches the Redis they use.
var redisFromEnv = map[string]map[string]string{
	"redis":          {"addressFromEnv": "RAGPIPE_REDIS_ADDR"},
	"redis-sentinel": {"addressesFromEnv": "RAGPIPE_REDIS_SENTINEL_ADDRS", "sentinelMasterFromEnv": "RAGPIPE_REDIS_SENTINEL_MASTER"},
	"redis-cluster":  {"addressesFromEnv": "RAGPIPE_REDIS_CLUSTER_ADDRS"},
}

// checkKEDA: one ScaledObject per worker Deployment, never below one
// replica, a Redis trigger of the workers' Redis topology on the pending
// list of each class it takes, the extract class also on the jobs waiting
// for dispatch, and credentials from the Secret.
func (s *set) checkKEDA(t *testing.T, cfgs map[string]config.Config, undispatched string) {
	sec := only(s.secrets)
	for _, name := range sortedKeys(s.triggerAuths) {
		for _, r := range s.triggerAuths[name].Spec.SecretTargetRef {
			if r.Name != sec.Name {
				t.Errorf("TriggerAuthentication %s: Secret %s, want %s", name, r.Name, sec.Name)
			} else if _, ok := sec.StringData[r.Key]; !ok {
				t.Errorf("TriggerAuthentication %s: the Secret has no %s", name, r.Key)
			}
		}
	}
	scaled := map[string]string{}
	for _, name := range sortedKeys(s.scaledObjects) {
		so := s.scaledObjects[name]
		where := "ScaledObject " + name
		ref := so.Spec.ScaleTargetRef
		if ref == nil || (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
			t.Errorf("%s: want a Deployment as its target", where)
			continue
		}
		d, ok := s.deployments[ref.Name]
		if !ok || !slices.Contains(s.deploymentsRunning(workerBinary), ref.Name) {
			t.Errorf("%s scales %s, which is no worker Deployment", where, ref.Name)
			continue
		}
		if other, dup := scaled[ref.Name]; dup {
			t.Errorf("%s and %s both scale %s", other, name, ref.Name)
		}
		scaled[ref.Name] = name
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 || so.Spec.IdleReplicaCount != nil {
			t.Errorf("%s: want minReplicaCount 1 or more and no idle count: a worker runs the dispatcher, reaper and relays", where)
		}
		if so.Spec.MaxReplicaCount == nil || so.Spec.MinReplicaCount != nil && *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
			t.Errorf("%s: want maxReplicaCount at least minReplicaCount", where)
		}
		cfg, ok := cfgs["Deployment "+ref.Name]
		if !ok {
			continue
		}
		env := s.environ(container{c: &d.Spec.Template.Spec.Containers[0]})
		redisType := "redis"
		switch {
		case len(cfg.RedisSentinelAddrs) > 0:
			redisType = "redis-sentinel"
		case len(cfg.RedisClusterAddrs) > 0:
			redisType = "redis-cluster"
		}
		watched := map[string]bool{}
		waiting := false
		for _, tr := range so.Spec.Triggers {
			where := fmt.Sprintf("%s, trigger %s", where, tr.Name)
			auth := s.triggerAuths[authName(tr)]
			if tr.AuthenticationRef == nil || auth == nil || (tr.AuthenticationRef.Kind != "" && tr.AuthenticationRef.Kind != "TriggerAuthentication") {
				t.Errorf("%s: want a TriggerAuthentication of this namespace for its credentials", where)
				continue
			}
			switch tr.Type {
			case "redis", "redis-sentinel", "redis-cluster":
				if tr.Type != redisType {
					t.Errorf("%s: type %s, but the workers use %s", where, tr.Type, redisType)
				}
				q, ok := strings.CutPrefix(tr.Metadata["listName"], "asynq:{")
				q, ok2 := strings.CutSuffix(q, "}:pending")
				if !ok || !ok2 || !cfg.WorkerTakes(q) {
					t.Errorf("%s: list %q is not the pending list of a class %s takes (%v)", where, tr.Metadata["listName"], ref.Name, cfg.WorkerQueues)
				}
				watched[q] = true
				for param, setting := range redisFromEnv[tr.Type] {
					if tr.Metadata[param] != setting || env[setting] == "" {
						t.Errorf("%s: want %s: %s, set in the workers' environment", where, param, setting)
					}
				}
				for _, literal := range []string{"address", "addresses", "host", "hosts", "port", "ports", "sentinelMaster"} {
					if _, ok := tr.Metadata[literal]; ok {
						t.Errorf("%s: %s is given outright; read it from the workers' settings", where, literal)
					}
				}
				if db, _ := strconv.Atoi(tr.Metadata["databaseIndex"]); db != cfg.RedisDB {
					t.Errorf("%s: databaseIndex %d, the workers use RAGPIPE_REDIS_DB %d", where, db, cfg.RedisDB)
				}
				if n, err := strconv.Atoi(tr.Metadata["listLength"]); err != nil || n < 1 {
					t.Errorf("%s: listLength %q, want a positive count", where, tr.Metadata["listLength"])
				}
				wantAuth := map[string]string{"password": "RAGPIPE_REDIS_PASSWORD"}
				if tr.Type == "redis-sentinel" {
					wantAuth["sentinelPassword"] = "RAGPIPE_REDIS_SENTINEL_PASSWORD"
				}
				for param, key := range wantAuth {
					if _, k := auth.secretKey(param); k != key {
						t.Errorf("%s: TriggerAuthentication %s gives %s from %q, want %s", where, auth.Name, param, k, key)
					}
				}
			case "postgresql":
				waiting = true
				if q := tr.Metadata["query"]; !strings.HasPrefix(q, "SELECT count(*) FROM jobs WHERE ") || !strings.Contains(q, undispatched) {
					t.Errorf("%s: query %q, want a count of jobs WHERE %s (the predicate of jobs_undispatched_idx)", where, q, undispatched)
				}
				if v, err := strconv.ParseFloat(tr.Metadata["targetQueryValue"], 64); err != nil || v <= 0 {
					t.Errorf("%s: targetQueryValue %q, want a positive number", where, tr.Metadata["targetQueryValue"])
				}
				if _, k := auth.secretKey("connection"); k != "RAGPIPE_DATABASE_URL" {
					t.Errorf("%s: the connection comes from %q, want RAGPIPE_DATABASE_URL (the primary)", where, k)
				}
			default:
				t.Errorf("%s: unexpected trigger type %s", where, tr.Type)
			}
		}
		for _, q := range cfg.WorkerQueues {
			if !watched[q] {
				t.Errorf("%s: no trigger on the pending list of class %s", where, q)
			}
		}
		if cfg.WorkerTakes("extract") != waiting {
			t.Errorf("%s: the class that takes extract, and only it, scales on the jobs waiting for dispatch too", where)
		}
	}
	for _, name := range s.deploymentsRunning(workerBinary) {
		if _, ok := scaled[name]; !ok {
			t.Errorf("no ScaledObject scales Deployment %s", name)
		}
	}
}

func authName(tr scaleTrigger) string {
	if tr.AuthenticationRef == nil {
		return ""
	}
	return tr.AuthenticationRef.Name
}

// TestComposeSettings keeps docker-compose.yml to real settings: every
// RAGPIPE_* name in it (variables, ${...} references, comments) is one of
// config.Config's, and the API's and the worker's environments, with
// compose's defaults for ${...}, load.
func TestComposeSettings(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	settings := settings()
	for _, name := range regexp.MustCompile(config.Prefix+`[A-Z0-9_]+`).FindAllString(string(b), -1) {
		if _, ok := settings[name]; !ok {
			t.Errorf("docker-compose.yml names %s, which is not a setting of pkg/config", name)
		}
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	interpolated := regexp.MustCompile(`\$\{[A-Za-z0-9_]+(:?-([^}]*))?\}`)
	for _, name := range []string{"api", "worker"} {
		svc, ok := compose.Services[name]
		if !ok || len(svc.Environment) == 0 {
			t.Errorf("docker-compose.yml: no environment for service %s", name)
			continue
		}
		var environ []string
		for k, v := range svc.Environment {
			environ = append(environ, k+"="+interpolated.ReplaceAllString(fmt.Sprint(v), "$2"))
		}
		if _, err := config.Load(environ); err != nil {
			t.Errorf("docker-compose.yml, service %s: %v", name, err)
		}
	}
}

// settings returns config.Config's environment variables, each with its
// field.
func settings() map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	v := reflect.TypeFor[config.Config]()
	for i := range v.NumField() {
		if name := v.Field(i).Tag.Get("env"); name != "" {
			out[config.Prefix+name] = v.Field(i)
		}
	}
	return out
}

// unauthenticatedGets returns the paths docs/openapi.yaml describes with a
// GET that needs no credentials (security: []), which a kubelet's probe can
// call. TestOpenAPIMatchesRoutes in pkg/httpapi keeps the description and
// the routes the API registers in step.
func unauthenticatedGets(t *testing.T) map[string]bool {
	t.Helper()
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"` // a path's operations, parameters, …
	}
	if err := yaml.Unmarshal(docs.OpenAPI, &spec); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	out := map[string]bool{}
	for path, ops := range spec.Paths {
		get, _ := ops["get"].(map[string]any)
		if security, ok := get["security"].([]any); ok && len(security) == 0 {
			out[path] = true
		}
	}
	return out
}

// undispatchedPredicate returns the WHERE clause of jobs_undispatched_idx,
// the partial index over jobs waiting for dispatch (migration 0002), which
// the dispatcher's query uses too.
func undispatchedPredicate(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "migrations/0002_lifecycle.up.sql"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`CREATE INDEX jobs_undispatched_idx ON jobs \([^)]*\) WHERE ([^;]*);`).FindSubmatch(b)
	if m == nil {
		t.Fatal("migrations/0002_lifecycle.up.sql no longer creates jobs_undispatched_idx")
	}
	return string(m[1])
}

// splitDocuments splits a multi-document YAML file, leaving out documents
// that hold only comments.
func splitDocuments(b []byte) [][]byte {
	var out [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, []byte(doc))
				break
			}
		}
	}
	return out
}

// typeOf returns a document's "apiVersion kind".
func typeOf(doc []byte) string {
	var tm metav1.TypeMeta
	if err := k8syaml.Unmarshal(doc, &tm); err != nil {
		return ""
	}
	return tm.APIVersion + " " + tm.Kind
}

// decode reads doc into the type of its kind, refusing unknown fields and
// unexpected kinds.
func decode(doc []byte) (metav1.Object, error) {
	typ := typeOf(doc)
	newObject, ok := kinds[typ]
	if !ok {
		return nil, fmt.Errorf("unexpected kind %q", strings.TrimSpace(typ))
	}
	o := newObject()
	if err := k8syaml.UnmarshalStrict(doc, o); err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	if o.GetName() == "" {
		return nil, fmt.Errorf("%s without a name", typ)
	}
	return o, nil
}

func only[V any](m map[string]V) V {
	for _, v := range m {
		return v
	}
	var zero V
	return zero
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortedBy orders got as want is ordered, unknown names last.
func sortedBy(want, got []string) []string {
	out := slices.Clone(got)
	slices.SortStableFunc(out, func(a, b string) int {
		ia, ib := slices.Index(want, a), slices.Index(want, b)
		if ia < 0 {
			ia = len(want)
		}
		if ib < 0 {
			ib = len(want)
		}
		return ia - ib
	})
	return out
}
