package peertest

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCompare checks the reading of `go test -json` and the comparison with
// the list of refusals by design, on canned events, so that a run through
// pgguard cannot pass the check for the wrong reason.
func TestCompare(t *testing.T) {
	const pkg = "example.com/suite"
	refusal := reasonDO
	type ev = testEvent
	pass := func(test string) []ev { return []ev{{Action: "run", Test: test}, {Action: "pass", Test: test}} }
	fail := func(test, output string) []ev {
		return []ev{{Action: "run", Test: test}, {Action: "output", Test: test, Output: output}, {Action: "fail", Test: test}}
	}
	cat := func(groups ...[]ev) []ev {
		var all []ev
		for _, g := range groups {
			all = append(all, g...)
		}
		return all
	}
	end := func(action string) []ev { return []ev{{Action: action, Elapsed: 1.5}} }
	tests := []struct {
		name    string
		events  []ev
		refused map[string]string
		// want are parts of each problem expected, in order; none for a
		// clean comparison.
		want []string
		pass int
	}{
		{name: "all pass", events: cat(pass("TestA"), pass("TestB"), end("pass")), pass: 2},
		{
			name:   "a failure",
			events: cat(pass("TestA"), fail("TestB", "ERROR: relation does not exist\n"), end("fail")),
			want:   []string{"TestB fails through pgguard\nERROR: relation does not exist"}, pass: 1,
		},
		{
			name:   "a failing subtest names its parent too",
			events: cat(fail("TestB/sub", "boom\n"), []ev{{Action: "fail", Test: "TestB"}}, end("fail")),
			want:   []string{"TestB/sub fails through pgguard", "TestB fails through pgguard\nboom"},
		},
		{
			name:    "refused by design, with the refusal",
			events:  cat(pass("TestA"), fail("TestDo", "ERROR: pgguard: statement refused because it cannot be analysed with certainty: "+refusal+" (SQLSTATE 42501)\n"), end("fail")),
			refused: map[string]string{"TestDo": refusal}, pass: 1,
		},
		{
			name:    "refused by design in a subtest",
			events:  cat(fail("TestDo/postgres", refusal+"\n"), []ev{{Action: "fail", Test: "TestDo"}}, end("fail")),
			refused: map[string]string{"TestDo": refusal},
		},
		{
			name:    "listed but passes",
			events:  cat(pass("TestDo"), end("pass")),
			refused: map[string]string{"TestDo": refusal},
			want:    []string{"TestDo is listed as refused by design"}, pass: 1,
		},
		{
			name:    "listed but fails for another reason",
			events:  cat(fail("TestDo", "ERROR: syntax error (SQLSTATE 42601)\n"), end("fail")),
			refused: map[string]string{"TestDo": refusal},
			want:    []string{"TestDo is listed as refused by design but failed without"},
		},
		{
			name:   "the package fails without a failing test",
			events: cat(pass("TestA"), []ev{{Action: "output", Output: "panic: test timed out after 8m0s\n"}}, end("fail")),
			want:   []string{"failed without a failing test (build error, panic or timeout)\npanic: test timed out"}, pass: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in strings.Builder
			for _, e := range tt.events {
				e.Package = pkg
				line, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				in.Write(line)
				in.WriteString("\n")
			}
			// Another package's events are not this one's.
			in.WriteString(`{"Action":"fail","Package":"example.com/other","Test":"TestB"}` + "\n")
			r := newSuiteResult()
			parseEvents(strings.NewReader(in.String()), map[string]*suiteResult{pkg: r})
			if !r.done {
				t.Fatal("the package's end was not seen")
			}
			if r.pass != tt.pass {
				t.Errorf("passed %d, want %d", r.pass, tt.pass)
			}
			got := compare(r, newSuiteResult(), tt.refused)
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d of them: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d is %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestUnexpectedAlerts checks that only alerts of the run's own pgguard
// whose reasons are refusals by design pass, and no withheld detail.
func TestUnexpectedAlerts(t *testing.T) {
	line := func(target, event, denied string) string {
		return `{"level":"warn","peertest":"` + target + `","event":"` + event + `","statement":"select $1","denied":[` + denied + `]}`
	}
	do := `{"column":"","category":"","act":"","reason":"` + reasonDO + `"}`
	lo := `{"column":"","category":"","act":"","reason":"lo_open ` + reasonLargeObjects + `"}`
	column := `{"column":"public.t.a","category":"all_columns","act":"read","reason":""}`
	other := `{"column":"","category":"","act":"","reason":"set_config changes settings"}`
	tests := []struct {
		name   string
		log    []string
		target Target
		want   int
	}{
		{"refusals by design", []string{line("enforce", "query_blocked", do), line("enforce", "query_blocked", lo)}, Enforce, 0},
		{"flagged by design", []string{line("monitor", "query_flagged", lo)}, Monitor, 0},
		{"a column", []string{line("enforce", "query_blocked", column)}, Enforce, 1},
		{"another reason", []string{line("monitor", "query_flagged", do+","+other)}, Monitor, 1},
		{"another pgguard's", []string{line("monitor", "query_flagged", other)}, Enforce, 0},
		{"not an alert", []string{`{"level":"info","peertest":"enforce","message":"connection opened"}`, "not json"}, Enforce, 0},
		{"a withheld detail", []string{`{"level":"info","peertest":"enforce","sqlstate":"23505","reason":"the table is unknown to the catalog","table":"pg_temp_3.t","message":"error detail withheld: it could show values of columns the session may not read"}`}, Enforce, 1},
		{"a detail monitor mode would withhold", []string{`{"level":"info","peertest":"monitor","sqlstate":"23505","reason":"the catalog is not loaded","table":"pg_temp_3.t","monitor":true,"message":"error detail withheld in enforce mode; forwarded unchanged in monitor mode"}`}, Monitor, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unexpectedAlerts([]byte(strings.Join(tt.log, "\n")+"\n"), tt.target)
			if len(got) != tt.want {
				t.Fatalf("unexpected alerts %q, want %d", got, tt.want)
			}
		})
	}
}
