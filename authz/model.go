package authz

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/casbin/casbin/v2/model"
)

// Matcher is the only matcher pgguard accepts in model.conf. The decision
// fast path evaluates exactly these semantics from precomputed tables (and
// the tests check it against Casbin's own evaluation), so a model with a
// different matcher is rejected instead of being silently misread:
//
//   - g(r.sub, p.sub): the rule's subject is the user or one of its roles,
//     through any depth of g links;
//   - p.purpose == "*" || g3(r.purpose, p.purpose): the rule is for any
//     purpose, or for the declared purpose or one of its ancestors in the g3
//     tree (so a rule for "marketing" also covers "newsletter");
//   - g2(r.obj, p.obj): the rule's object is the column itself, a glob
//     pattern covering it (g2's role manager matches with MatchPattern), or
//     a category that a g2 pattern gives the column, possibly through
//     category -> parent category g2 links;
//   - r.act == p.act.
const Matcher = `g(r.sub, p.sub) && (p.purpose == "*" || g3(r.purpose, p.purpose)) && g2(r.obj, p.obj) && r.act == p.act`

// Effect is the policy effect the contract fixes: deny wins, and without
// an allow there is no access.
const Effect = `some(where (p.eft == allow)) && !some(where (p.eft == deny))`

// modelExpectation is one definition the model must carry, compared after
// Casbin parsed it (so "r.sub" reads "r_sub") with white space removed.
type modelExpectation struct {
	sec, key, section, want string
}

// modelShape lists every definition of the supported model.
var modelShape = []modelExpectation{
	{"r", "r", "request_definition", "sub,purpose,obj,act"},
	{"p", "p", "policy_definition", "sub,purpose,obj,act,eft"},
	{"g", "g", "role_definition", "_,_"},
	{"g", "g2", "role_definition", "_,_"},
	{"g", "g3", "role_definition", "_,_"},
	{"e", "e", "policy_effect", Effect},
	{"m", "m", "matchers", Matcher},
}

// lintModel checks that the model file loads in Casbin and has the shape
// pgguard evaluates. It returns the parsed model when it loads at all.
func lintModel(file string, data []byte) (model.Model, []Finding) {
	m, err := model.NewModelFromString(string(data))
	if err != nil {
		return nil, []Finding{{File: file, Severity: SeverityError, Code: "model-load",
			Message: fmt.Sprintf("Casbin cannot load the model: %v", err)}}
	}
	lines := modelLines(data)
	var out []Finding
	for _, x := range modelShape {
		at := lines[x.section+"::"+x.key]
		got, ok := m[x.sec][x.key]
		if !ok {
			out = append(out, modelFinding(file, lines["["+x.section+"]"], "missing %s in [%s]; pgguard needs %s = %s", x.key, x.section, x.key, x.want))
			continue
		}
		if squeeze(got.Value) != squeeze(escapeModel(x.want)) {
			out = append(out, modelFinding(file, at, "%s = %s is not supported; pgguard evaluates %s = %s", x.key, got.Value, x.key, x.want))
		}
	}
	for sec, defs := range m {
		for key := range defs {
			if sec != "logger" && !expectedKey(sec, key) {
				out = append(out, modelFinding(file, lines[sectionOf(sec)+"::"+key], "definition %s is not supported by pgguard", key))
			}
		}
	}
	return m, out
}

func modelFinding(file string, line int, format string, args ...any) Finding {
	return Finding{File: file, Line: line, Severity: SeverityError, Code: "model-shape", Message: fmt.Sprintf(format, args...)}
}

func expectedKey(sec, key string) bool {
	for _, x := range modelShape {
		if x.sec == sec && x.key == key {
			return true
		}
	}
	return false
}

func sectionOf(sec string) string {
	for _, x := range modelShape {
		if x.sec == sec {
			return x.section
		}
	}
	return sec
}

// escapeModel writes "r.sub" as "r_sub", the way Casbin stores definitions.
func escapeModel(s string) string {
	for _, p := range []string{"r", "p"} {
		s = strings.ReplaceAll(s, p+".", p+"_")
	}
	return s
}

// squeeze drops all white space so formatting differences do not matter.
func squeeze(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// modelLines maps "section::key" and "[section]" to their 1-based line in a
// model file, so model findings can point at the line to fix.
func modelLines(data []byte) map[string]int {
	out := map[string]int{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out["["+section+"]"] = n
		case strings.Contains(line, "=") && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, ";"):
			key := strings.TrimSpace(line[:strings.Index(line, "=")])
			if _, seen := out[section+"::"+key]; !seen {
				out[section+"::"+key] = n
			}
		}
	}
	return out
}
