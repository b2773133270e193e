package deploytest_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`up{job="danube-connect"} == 0`, []string{"up"}},
		{`sum by (connector) (rate(connector_records_received_total{connector=~"$connector"}[$__rate_interval]))`,
			[]string{"connector_records_received_total"}},
		{`histogram_quantile(0.99, sum by (connector, le) (rate(connector_processing_duration_seconds_bucket[5m])))`,
			[]string{"connector_processing_duration_seconds_bucket"}},
		{`sum without(instance)(rate(a_total[1m])) / on(connector) group_left(pod) b offset 5m`, []string{"a_total", "b"}},
		{"max by (connector) (x) > 0\nand max by (connector) (deriv(y[30m])) > 0", []string{"x", "y"}},
		{`rate(a[5m:1m]) and ignoring (class) b or c unless bool d`, []string{"a", "b", "c", "d"}},
		{`{__name__="by_name", job="x"} + count(z{by="sum(not_a_metric)"})`, []string{"by_name", "z"}},
		{`topk(3, sum(q) by (le)) # a comment naming not_a_metric`, []string{"q"}},
		{`1e3 * 0.5 + .5 - Inf + NaN + vector(1) + time()`, nil},
		{`a @ start() + b[1h] @ 1700000000`, []string{"a", "b"}},
		{`job:requests:rate5m > 1`, []string{"job:requests:rate5m"}},
	} {
		got, err := deploytest.MetricNames(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestMetricNamesRejectsUnbalanced(t *testing.T) {
	for _, expr := range []string{`rate(a[5m)`, `a{job="x"`, `a{job="x}`, `a]`} {
		if got, err := deploytest.MetricNames(expr); err == nil {
			t.Errorf("MetricNames(%q) = %q, want an error", expr, got)
		}
	}
}

func TestExposedNames(t *testing.T) {
	page := `# HELP connector_paused 1 while paused.
# TYPE connector_paused gauge
connector_paused{connector="c1"} 0
# TYPE connector_batch_size histogram
connector_batch_size_bucket{connector="c1",le="1"} 3
connector_batch_size_sum{connector="c1"} 3
connector_batch_size_count{connector="c1"} 3
go_goroutines 12
`
	got := slices.Sorted(maps.Keys(deploytest.ExposedNames(page)))
	want := []string{"connector_batch_size_bucket", "connector_batch_size_count", "connector_batch_size_sum", "connector_paused", "go_goroutines"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestContainerEnvResolvesConfigMapAndFieldRefs(t *testing.T) {
	objs, err := deploytest.ParseManifest([]byte(`
apiVersion: v1
kind: ConfigMap
metadata: {name: env}
data: {B: "2", A: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
        - name: c
          envFrom: [{configMapRef: {name: env}}]
          env:
            - name: ID
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - {name: NAME, value: "x-$(ID)-$(A)"}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := deploytest.ContainerEnv(objs, objs[1].Spec.Template.Spec.Containers[0], map[string]string{"metadata.name": "pod-0"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", "B=2", "ID=pod-0", "NAME=x-pod-0-1"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	_, err = deploytest.ContainerEnv(objs[1:], objs[1].Spec.Template.Spec.Containers[0], nil)
	if err == nil || !strings.Contains(err.Error(), `ConfigMap "env"`) {
		t.Fatalf("without the ConfigMap: %v", err)
	}
}
