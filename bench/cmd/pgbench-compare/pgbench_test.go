package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/authz"
)

func TestConfigs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"light rate for each mode", []string{"-scripts", "select-only,tpcb", "-modes", "simple,prepared", "-clients", "1,8", "-light-rate", "150"}, []string{
			"select-only simple c1", "select-only simple c8", "select-only prepared c1", "select-only prepared c8",
			"tpcb simple c1", "tpcb simple c8", "tpcb prepared c1", "tpcb prepared c8",
			"select-only simple c1 at 150/s", "select-only prepared c1 at 150/s",
		}},
		{"no light rate", []string{"-scripts", "select-only", "-modes", "extended", "-clients", "8", "-light-rate", "0"}, []string{
			"select-only extended c8",
		}},
		{"light rate needs select-only", []string{"-scripts", "tpcb", "-modes", "simple", "-clients", "1"}, []string{
			"tpcb simple c1",
		}},
		{"barrier scripts", []string{"-scripts", "select-only,select-tx,purpose-tx,purpose-set", "-modes", "prepared", "-clients", "1", "-light-rate", "0"}, []string{
			"select-only prepared c1", "select-tx prepared c1", "purpose-tx prepared c1", "purpose-set prepared c1",
		}},
		{"TLS variants, light rate without TLS alone", []string{"-scripts", "select-only", "-modes", "prepared", "-clients", "8", "-tls", "none,both", "-light-rate", "100"}, []string{
			"select-only prepared c8", "select-only prepared c8 tls=both", "select-only prepared c1 at 100/s",
		}},
		{"shapes run in simple mode alone", []string{"-scripts", "shapes-10k,select-only", "-modes", "simple,prepared", "-clients", "8", "-light-rate", "0"}, []string{
			"shapes-10k simple c8", "select-only simple c8", "select-only prepared c8",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range o.configs() {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("configs = %q\nwant %q", got, tt.want)
			}
		})
	}
	if _, err := parseOptions([]string{"-tls", "all"}); err == nil {
		t.Error("an unknown -tls variant was accepted")
	}
	if _, err := parseOptions([]string{"-light-rate", "-1"}); err == nil {
		t.Error("a negative -light-rate was accepted")
	}
	if _, err := parseOptions([]string{"-scripts", "select-only,purpose"}); err == nil {
		t.Error("an unknown script was accepted")
	}
}

// TestCustomScripts checks that every script -scripts accepts is either
// built into pgbench or has a file, that each reads one account per
// transaction by a random id over the whole table, and that the purpose
// scripts set pgguard.purpose, LOCAL or not, to the purpose the policy names.
func TestCustomScripts(t *testing.T) {
	for _, name := range scriptNames {
		script, ok := customScripts[name]
		if name == "select-only" || name == "tpcb" {
			if ok {
				t.Errorf("%s is built into pgbench but has a script file", name)
			}
			continue
		}
		if !ok {
			t.Errorf("-scripts accepts %s, which has no script file", name)
			continue
		}
		read := "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;"
		if isShapes(name) {
			read = "SELECT abalance AS shape_:shape FROM pgbench_accounts WHERE aid = :aid;"
		}
		for _, want := range []string{`\set aid random(1, 100000 * :scale)`, read} {
			if !strings.Contains(script, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		set := map[string]string{
			"purpose-tx":  "SET LOCAL pgguard.purpose = '" + benchPurpose + "';",
			"purpose-set": "SET pgguard.purpose = '" + benchPurpose + "';",
		}[name]
		if set != "" && !strings.Contains(script, set) {
			t.Errorf("%s lacks %q", name, set)
		}
		if strings.Contains(script, "BEGIN;") != strings.Contains(script, "COMMIT;") {
			t.Errorf("%s: BEGIN without COMMIT or the reverse", name)
		}
	}
	for name := range customScripts {
		if !has(scriptNames, name) {
			t.Errorf("script %s is not accepted by -scripts", name)
		}
	}
}

// TestBenchPolicy loads the policy pgguard runs with: the pgbench role may
// read the accounts under the purpose the scripts declare and under none,
// and the policy knows that purpose, so that pgguard does not warn about it
// in every transaction.
func TestBenchPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(path, []byte(benchPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := authz.Load("../../../model.conf", path, authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.KnownPurpose(benchPurpose) {
		t.Errorf("the policy does not know purpose %q", benchPurpose)
	}
	read := []authz.Access{{Column: "public.pgbench_accounts.abalance", Act: authz.ActRead}}
	for _, purpose := range []string{benchPurpose, ""} {
		if d := p.Decide(benchUser, purpose, read); !d.Allowed {
			t.Errorf("purpose %q: reading pgbench_accounts.abalance denied: %+v", purpose, d.Denied)
		}
	}
}
