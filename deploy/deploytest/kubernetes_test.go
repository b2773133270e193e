package deploytest_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
)

// render returns the objects `kustomize build dir` renders, through the kustomize library itself
// (no kubectl needed).
func render(t *testing.T, dir string) []deploytest.Object {
	t.Helper()
	resmap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := resmap.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	objs, err := deploytest.ParseManifest(out)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return objs
}

// envValue returns the value of name in environ, or "" and false.
func envValue(environ []string, name string) (string, bool) {
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// TestKubernetesOverlays renders deploy/kubernetes/overlays/<service> for every declared image
// and checks what a connector pod must have: the declared image; probes on /healthz and /readyz;
// resources; the security context (non-root 65532, read-only root filesystem, no privilege
// escalation, every capability dropped, RuntimeDefault seccomp); a grace period above
// SHUTDOWN_TIMEOUT_MS; every *_FILE variable pointing into a mounted volume; the common labels; a
// PodDisruptionBudget selecting the pods; and a HorizontalPodAutoscaler exactly where the replicas
// share the work (Shared/KeyShared sinks, MQTT $share/ subscriptions, Kafka consumer groups),
// never for the single-active source-postgres (which runs Recreate).
func TestKubernetesOverlays(t *testing.T) {
	declared := images(t)
	overlays, err := filepath.Glob(deployPath("kubernetes", "overlays", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range overlays {
		names = append(names, filepath.Base(o))
	}
	if want := slices.Sorted(maps.Keys(declared)); !slices.Equal(names, want) {
		t.Errorf("overlays %v, want one per declared image %v", names, want)
	}
	for _, svc := range names {
		t.Run(svc, func(t *testing.T) {
			objs := render(t, deployPath("kubernetes", "overlays", svc))
			checkOverlay(t, svc, objs, declared[svc].Repository)
		})
	}
}

func checkOverlay(t *testing.T, svc string, objs []deploytest.Object, repository string) {
	var workload *deploytest.Object
	var pdb, hpa []deploytest.Object
	for i, o := range objs {
		if o.Metadata.Labels["app.kubernetes.io/part-of"] != "danube-connect" {
			t.Errorf("%s %s lacks the common label app.kubernetes.io/part-of=danube-connect", o.Kind, o.Metadata.Name)
		}
		switch o.Kind {
		case "Deployment", "StatefulSet":
			if workload != nil {
				t.Fatalf("two workloads: %s and %s", workload.Metadata.Name, o.Metadata.Name)
			}
			workload = &objs[i]
		case "PodDisruptionBudget":
			pdb = append(pdb, o)
		case "HorizontalPodAutoscaler":
			hpa = append(hpa, o)
		}
	}
	if workload == nil {
		t.Fatal("no Deployment or StatefulSet")
	}
	pod := workload.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if repo, _, _ := strings.Cut(c.Image, ":"); repo != repository {
		t.Errorf("image %q, want %s:<tag>", c.Image, repository)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("no liveness probe on /healthz")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("no readiness probe on /readyz")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	ps := pod.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 ||
		ps.SeccompProfile == nil || ps.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, runAsUser 65532, seccompProfile RuntimeDefault", ps)
	}
	cs := c.SecurityContext
	if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation || cs.ReadOnlyRootFilesystem == nil ||
		!*cs.ReadOnlyRootFilesystem || cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext %+v: want allowPrivilegeEscalation false, readOnlyRootFilesystem, capabilities drop ALL", cs)
	}

	environ, err := deploytest.ContainerEnv(objs, c, podFields)
	if err != nil {
		t.Fatal(err)
	}
	shutdown := 25 * time.Second
	if v, ok := envValue(environ, "SHUTDOWN_TIMEOUT_MS"); ok {
		ms, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("SHUTDOWN_TIMEOUT_MS=%q", v)
		}
		shutdown = time.Duration(ms) * time.Millisecond
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: want at least SHUTDOWN_TIMEOUT_MS (%v) + 5 s", g, shutdown)
	}
	for _, kv := range environ {
		name, path, _ := strings.Cut(kv, "=")
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		mounted := slices.ContainsFunc(c.VolumeMounts, func(m deploytest.VolumeMount) bool {
			return strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") &&
				slices.ContainsFunc(pod.Volumes, func(v deploytest.Volume) bool { return v.Name == m.Name && (v.Secret != nil || v.ConfigMap != nil) })
		})
		if !mounted {
			t.Errorf("%s=%s is not in a mounted secret or ConfigMap volume", name, path)
		}
	}

	if len(pdb) != 1 || !matches(pdb[0].Spec.Selector.MatchLabels, workload.Spec.Template.Metadata.Labels) {
		t.Errorf("want one PodDisruptionBudget selecting the pods, got %+v", pdb)
	}
	shares := services[svc].shares
	switch {
	case shares && len(hpa) != 1:
		t.Errorf("%s's replicas share the work: want a HorizontalPodAutoscaler, got %d", svc, len(hpa))
	case !shares && len(hpa) != 0:
		t.Errorf("%s's replicas do not share the work: want no HorizontalPodAutoscaler", svc)
	case shares:
		ref := hpa[0].Spec.ScaleTargetRef
		if ref.Kind != workload.Kind || ref.Name != workload.Metadata.Name || hpa[0].Spec.MinReplicas < 1 ||
			hpa[0].Spec.MaxReplicas < hpa[0].Spec.MinReplicas {
			t.Errorf("the HorizontalPodAutoscaler %+v does not scale %s %s", hpa[0].Spec, workload.Kind, workload.Metadata.Name)
		}
		checkSharing(t, svc, environ)
	}
	if !shares && workload.Kind == "Deployment" && workload.Spec.Strategy.Type != "Recreate" {
		t.Errorf("%s runs one active replica: want strategy Recreate, got %q", svc, workload.Spec.Strategy.Type)
	}
}

// checkSharing fails t unless environ makes svc's replicas share the work.
func checkSharing(t *testing.T, svc string, environ []string) {
	t.Helper()
	get := func(name string) string { v, _ := envValue(environ, name); return v }
	switch svc {
	case "sink-http", "sink-clickhouse":
		if typ := get("SUBSCRIPTION_TYPE"); typ != "Shared" && typ != "KeyShared" {
			t.Errorf("an autoscaled sink needs SUBSCRIPTION_TYPE Shared or KeyShared, got %q", typ)
		}
	case "source-mqtt":
		for m := range strings.SplitSeq(get("MQTT_TOPIC_MAPPINGS"), ";") {
			if !strings.HasPrefix(m, "$share/") {
				t.Errorf("an autoscaled MQTT source needs $share/ filters, got mapping %q", m)
			}
		}
	case "bridge-kafka":
		if get("KAFKA_GROUP_ID") == "" || get("IMPORT_MAPPINGS") == "" {
			t.Error("an autoscaled bridge shares its imports through KAFKA_GROUP_ID")
		}
	case "source-webhook": // stateless: the Service spreads the requests
	default:
		t.Errorf("no rule says how %s's replicas share the work", svc)
	}
	if name, _ := envValue(environ, "CONNECTOR_NAME"); !strings.Contains(name, podFields["metadata.name"]) {
		t.Errorf("CONNECTOR_NAME=%q is not unique per replica (derive it from the pod name)", name)
	}
}

// matches reports whether labels has every pair of selector.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
