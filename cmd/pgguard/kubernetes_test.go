package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// k8sObject is what the test reads of a Kubernetes manifest.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec map[string]any `yaml:"spec"`
}

// TestKubernetesManifests: both manifests run two or more replicas whose
// readiness and liveness are pgguard's own endpoints on the metrics port,
// scraped by annotation, with a disruption budget, a grace period longer
// than pgguard's shutdown grace, and only environment variables that are
// serve flags; one takes the policy from a ConfigMap folder (so it
// reloads), the other from the policy store, each pod under its own name.
func TestKubernetesManifests(t *testing.T) {
	for _, tc := range []struct {
		file       string
		policyFrom string
	}{
		{"deploy/kubernetes/pgguard.yaml", "configmap"},
		{"deploy/kubernetes/pgguard-policy-store.yaml", "store"},
	} {
		t.Run(tc.file, func(t *testing.T) { checkManifest(t, tc.file, tc.policyFrom) })
	}
}

func checkManifest(t *testing.T, file, policyFrom string) {
	objs := readManifests(t, file)
	byKind := map[string]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = o
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if _, ok := byKind[kind]; !ok {
			t.Fatalf("no %s", kind)
		}
	}
	dep := byKind["Deployment"].Spec
	if r, _ := dep["replicas"].(int); r < 2 {
		t.Errorf("replicas %v, want 2 or more", dep["replicas"])
	}
	pod := dig(t, dep, "template", "spec")
	ann := dig(t, dep, "template", "metadata", "annotations")
	c := pod["containers"].([]any)[0].(map[string]any)
	env := map[string]string{}
	from := map[string]map[string]any{} // valueFrom of each variable that has one
	known := map[string]bool{}
	serveFlags(&serveConfig{}).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	for _, e := range c["env"].([]any) {
		m := e.(map[string]any)
		name := m["name"].(string)
		if !known[name] {
			t.Errorf("%s is no flag of pgguard serve", name)
		}
		v, _ := m["value"].(string)
		env[name] = v
		if vf, ok := m["valueFrom"].(map[string]any); ok {
			from[name] = vf
		}
	}
	metricsPort := env["PGGUARD_METRICS"][strings.LastIndex(env["PGGUARD_METRICS"], ":")+1:]
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != metricsPort {
		t.Errorf("scrape annotations %v do not name the metrics port %s", ann, metricsPort)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/livez"} {
		get := dig(t, c, probe, "httpGet")
		if get["path"] != path || get["port"] != "metrics" {
			t.Errorf("%s asks %v on port %v, want %s on metrics", probe, get["path"], get["port"], path)
		}
	}
	ports := map[string]int{}
	for _, p := range c["ports"].([]any) {
		m := p.(map[string]any)
		ports[m["name"].(string)] = m["containerPort"].(int)
	}
	if port := strings.TrimPrefix(env["PGGUARD_METRICS"], "0.0.0.0:"); port != strconv.Itoa(ports["metrics"]) {
		t.Errorf("PGGUARD_METRICS %s is not the metrics port %d", env["PGGUARD_METRICS"], ports["metrics"])
	}
	switch policyFrom {
	case "configmap":
		mount := c["volumeMounts"].([]any)[0].(map[string]any)["mountPath"].(string)
		if !strings.HasPrefix(env["PGGUARD_POLICY"], mount+"/") || !strings.HasPrefix(env["PGGUARD_MODEL"], mount+"/") {
			t.Errorf("policy %s and model %s are not in the ConfigMap folder %s", env["PGGUARD_POLICY"], env["PGGUARD_MODEL"], mount)
		}
		vol := pod["volumes"].([]any)[0].(map[string]any)
		if _, ok := vol["configMap"]; !ok {
			t.Errorf("the policy volume is not a ConfigMap: %v", vol)
		}
	case "store":
		if _, ok := from["PGGUARD_POLICY_STORE"]["secretKeyRef"]; !ok {
			t.Errorf("PGGUARD_POLICY_STORE does not come from a Secret (its URL holds a password): %v", from["PGGUARD_POLICY_STORE"])
		}
		if f, _ := from["PGGUARD_REPLICA_ID"]["fieldRef"].(map[string]any); f["fieldPath"] != "metadata.name" {
			t.Errorf("PGGUARD_REPLICA_ID is not the pod's name: %v", from["PGGUARD_REPLICA_ID"])
		}
		if d, err := time.ParseDuration(env["PGGUARD_POLICY_MAX_AGE"]); err != nil || d <= 0 {
			t.Errorf("PGGUARD_POLICY_MAX_AGE %q: %v", env["PGGUARD_POLICY_MAX_AGE"], err)
		}
		if _, ok := env["PGGUARD_POLICY"]; ok {
			t.Error("PGGUARD_POLICY set beside PGGUARD_POLICY_STORE, which replaces it")
		}
	}
	grace, err := time.ParseDuration(env["PGGUARD_SHUTDOWN_GRACE"])
	if err != nil {
		t.Fatal(err)
	}
	if period, _ := pod["terminationGracePeriodSeconds"].(int); time.Duration(period)*time.Second <= grace {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than --shutdown-grace %s", period, grace)
	}
	pdb := byKind["PodDisruptionBudget"].Spec
	if pdb["minAvailable"] != 1 {
		t.Errorf("disruption budget %v", pdb)
	}
	if dig(t, pdb, "selector", "matchLabels")["app.kubernetes.io/name"] != dig(t, dep, "selector", "matchLabels")["app.kubernetes.io/name"] {
		t.Error("the disruption budget does not select the Deployment's pods")
	}
}

func readManifests(t *testing.T, path string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []k8sObject
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind != "" {
			out = append(out, o)
		}
	}
}

// dig follows keys through nested maps.
func dig(t *testing.T, m map[string]any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("no %s in %v", k, m)
		}
		m = next
	}
	return m
}
