// Package deploytest reads the deployment files under deploy/ the way the orchestrators do, for
// the tests that keep them from drifting from the code: the environment Kubernetes gives a
// connector's container (its ConfigMap included), the objects of a manifest, the metric names a
// PromQL expression selects and the names a /metrics page exports.
//
// The drift tests themselves are this package's tests; the services' own tests use KubernetesEnv
// to load their manifest's environment through their real configuration code.
package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Object is what the drift tests read of a Kubernetes object; fields they do not check are
// ignored.
type Object struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   Meta              `yaml:"metadata"`
	Data       map[string]string `yaml:"data"` // ConfigMap
	Spec       Spec              `yaml:"spec"`
}

// Meta is an object's or a pod template's metadata.
type Meta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Spec holds the spec fields of the workloads (Deployment, StatefulSet), PodDisruptionBudget and
// HorizontalPodAutoscaler the deployment uses.
type Spec struct {
	Replicas *int `yaml:"replicas"`
	Strategy struct {
		Type string `yaml:"type"`
	} `yaml:"strategy"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata Meta    `yaml:"metadata"`
		Spec     PodSpec `yaml:"spec"`
	} `yaml:"template"`

	MaxUnavailable any `yaml:"maxUnavailable"` // PodDisruptionBudget
	MinAvailable   any `yaml:"minAvailable"`

	ScaleTargetRef struct { // HorizontalPodAutoscaler
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
}

// PodSpec is a pod template's spec.
type PodSpec struct {
	TerminationGracePeriodSeconds *int                `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool               `yaml:"automountServiceAccountToken"`
	SecurityContext               *PodSecurityContext `yaml:"securityContext"`
	Containers                    []Container         `yaml:"containers"`
	Volumes                       []Volume            `yaml:"volumes"`
}

// PodSecurityContext is a pod's securityContext.
type PodSecurityContext struct {
	RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
	RunAsUser      *int  `yaml:"runAsUser"`
	RunAsGroup     *int  `yaml:"runAsGroup"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

// Container is a pod's container.
type Container struct {
	Name    string `yaml:"name"`
	Image   string `yaml:"image"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *Probe `yaml:"livenessProbe"`
	ReadinessProbe *Probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             *struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []VolumeMount `yaml:"volumeMounts"`
}

// VolumeMount mounts a pod volume into the container.
type VolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

// Probe is an HTTP probe.
type Probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// Volume is a pod's volume; only secret and configMap volumes are used.
type Volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
}

// IsWorkload reports whether o runs pods from a template.
func (o Object) IsWorkload() bool { return len(o.Spec.Template.Spec.Containers) > 0 }

// ParseManifest decodes every document of a multi-document YAML manifest.
func ParseManifest(raw []byte) ([]Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var objs []Object
	for {
		var o Object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
}

// ReadManifest is ParseManifest of the file at path.
func ReadManifest(path string) ([]Object, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// ContainerEnv returns the environment ("NAME=value", in Kubernetes' order) that Kubernetes gives
// c, a container of a pod in objs: first the data of every ConfigMap its envFrom names (each in
// key order; the ConfigMap must be in objs), then its env list, which overrides them. What only
// the cluster knows is stood in for as Kubernetes would resolve it: a valueFrom.fieldRef takes
// fields[fieldPath], and $(NAME) in a value is replaced by the value of a variable defined before
// it. Mounted secret files are left as written (see configtest.StandInFiles).
func ContainerEnv(objs []Object, c Container, fields map[string]string) ([]string, error) {
	var environ, refs []string // refs: "$(NAME)", value pairs of the variables defined so far
	define := func(name, value string) {
		refs = append(refs, "$("+name+")", value)
		environ = append(environ, name+"="+value)
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			return nil, errors.New("only envFrom.configMapRef is resolved (secrets go in files: *_FILE)")
		}
		i := slices.IndexFunc(objs, func(o Object) bool { return o.Kind == "ConfigMap" && o.Metadata.Name == from.ConfigMapRef.Name })
		if i < 0 {
			return nil, fmt.Errorf("envFrom names ConfigMap %q, which the manifest lacks", from.ConfigMapRef.Name)
		}
		keys := make([]string, 0, len(objs[i].Data))
		for k := range objs[i].Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			define(k, objs[i].Data[k])
		}
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return nil, fmt.Errorf("%s: only valueFrom.fieldRef has a stand-in", e.Name)
			}
			var ok bool
			if v, ok = fields[e.ValueFrom.FieldRef.FieldPath]; !ok {
				return nil, fmt.Errorf("%s comes from fieldRef %s: give its stand-in in fields", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		} else if len(refs) > 0 {
			v = strings.NewReplacer(refs...).Replace(v)
		}
		define(e.Name, v)
	}
	return environ, nil
}

// KubernetesEnv returns the environment Kubernetes gives container in the first workload of the
// manifest at path (see ContainerEnv; fields stands in for fieldRefs). A connector runs alone in
// its pod, so t fails unless the pod template has exactly one container, named container.
func KubernetesEnv(t testing.TB, path, container string, fields map[string]string) []string {
	t.Helper()
	objs, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(objs, Object.IsWorkload)
	if i < 0 {
		t.Fatalf("%s has no workload with a pod template", path)
	}
	cs := objs[i].Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != container {
		t.Fatalf("%s: want one container named %q in %s %s", path, container, objs[i].Kind, objs[i].Metadata.Name)
	}
	environ, err := ContainerEnv(objs, cs[0], fields)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return environ
}
