package authz

import (
	"fmt"
	"strings"
)

// Decide answers whether subject, declaring purpose ("" for none), may make
// all the accesses of one statement. The statement is allowed only if every
// access is; each denied access gets a Denial saying why.
//
// A column is allowed when some allow rule and no deny rule matches it (deny
// wins). A column with no matching rule is denied when classified (some g2
// pattern covers it) and otherwise follows Options.Unclassified. Accesses
// with an act other than read, write or execute, or with a name that is not
// schema.table.column or function:schema.name, are denied: when in doubt,
// do not use it.
//
// Answers are cached per (subject, purpose, column, act), so the cost on the
// hot path is one map lookup per access and no allocation unless something
// is denied.
func (p *Policy) Decide(subject, purpose string, accesses []Access) Decision {
	d := Decision{Allowed: true, Roles: p.roles[subject], PolicyVersion: p.version}
	missingAllow := false
	for _, a := range accesses {
		v := p.verdict(subject, purpose, a.Column, a.Act)
		if v.allowed || alreadyDenied(d.Denied, a) {
			continue
		}
		d.Allowed = false
		missingAllow = missingAllow || !v.denyRule
		d.Denied = append(d.Denied, Denial{Column: a.Column, Category: v.category, Act: a.Act, Reason: v.reason})
	}
	if missingAllow {
		d.UnknownSubject = !p.HasRules(subject)
		d.UnknownPurpose = purpose != "" && !p.KnownPurpose(purpose)
	}
	return d
}

// alreadyDenied keeps one Denial per column and act when a statement
// touches a column twice (say in the select list and in WHERE).
func alreadyDenied(ds []Denial, a Access) bool {
	for _, d := range ds {
		if d.Column == a.Column && d.Act == a.Act {
			return true
		}
	}
	return false
}

// FunctionAllowed reports whether subject, with purpose, may call the
// function schema.name. Functions are never "unclassified": without an
// allow rule for act execute on its function:schema.name object (directly,
// by pattern or by category), a function is denied whatever
// Options.Unclassified says.
func (p *Policy) FunctionAllowed(subject, purpose, schema, name string) bool {
	return p.verdict(subject, purpose, FunctionPrefix+schema+"."+name, ActExecute).allowed
}

// ExtensionTrusted reports whether subject, with purpose, may run the
// functions and operators of the extension name as if they were built in:
// some rule allows act execute on its extension:name object.
func (p *Policy) ExtensionTrusted(subject, purpose, name string) bool {
	return p.verdict(subject, purpose, ExtensionPrefix+name, ActExecute).allowed
}

// DDLAllowed reports whether subject, with purpose, may attach code to the
// database: a rule allows act ddl on object ddl. Unclassified or not, no
// one may without such a rule.
func (p *Policy) DDLAllowed(subject, purpose string) bool {
	return p.verdict(subject, purpose, ObjectDDL, ActDDL).allowed
}

// Why answers one access like Decide and names what decided it: the deny
// rule or the missing allow when denied, the first allow rule (with its
// file and line) or the unclassified setting when allowed.
func (p *Policy) Why(subject, purpose string, a Access) (allowed bool, reason string) {
	v := p.verdict(subject, purpose, a.Column, a.Act)
	if !v.allowed {
		return false, v.reason
	}
	allow, _ := p.match(subject, purpose, a.Column, a.Act, p.Categories(a.Column))
	if allow == nil {
		return true, "unclassified: no g2 rule classifies the column, and unclassified columns are allowed"
	}
	return true, fmt.Sprintf("allow rule %q (%s:%d)", allow.text, p.file, allow.line)
}

// verdict answers one question from the cache, computing it on a miss.
func (p *Policy) verdict(subject, purpose, object string, act Act) verdict {
	k := cacheKey{subject: subject, purpose: purpose, object: object, act: act}
	if v, ok := p.cache.get(k); ok {
		return v
	}
	v := p.evaluate(subject, purpose, object, act)
	p.cache.put(k, v)
	return v
}

// evaluate computes one verdict with the model's matcher semantics (see
// Matcher) over the precomputed tables: the subject and its roles, the
// purpose and its ancestors, the object and its categories.
func (p *Policy) evaluate(subject, purpose, object string, act Act) verdict {
	if act != ActRead && act != ActWrite && act != ActExecute && act != ActDDL {
		return verdict{reason: fmt.Sprintf("unknown act %q", act)}
	}
	kind, _ := objectKind(object)
	if kind != objColumn && kind != objFunction && kind != objExtension && kind != objDDL {
		return verdict{reason: fmt.Sprintf("%q is not a schema.table.column, function:schema.name, extension:name or ddl name", object)}
	}
	cats := p.Categories(object)
	allow, deny := p.match(subject, purpose, object, act, cats)
	switch {
	case deny != nil:
		category := deny.obj
		if !deny.category {
			category = first(cats)
		}
		return verdict{denyRule: true, category: category, reason: fmt.Sprintf("deny rule %q (%s:%d)", deny.text, p.file, deny.line)}
	case allow != nil:
		return verdict{allowed: true}
	case len(cats) > 0:
		return verdict{category: cats[0], reason: noAllowReason(cats, purpose)}
	case kind == objFunction || kind == objExtension:
		return verdict{reason: fmt.Sprintf("no rule allows execute on %s %s", object, purposePhrase(purpose))}
	case kind == objDDL:
		return verdict{reason: fmt.Sprintf("no rule allows act ddl on object ddl %s", purposePhrase(purpose))}
	case !p.unclassifiedDeny:
		return verdict{allowed: true}
	default:
		return verdict{reason: "column is not classified by any g2 rule, and unclassified columns are denied"}
	}
}

// match finds the first (by line) allow and deny rule that apply.
func (p *Policy) match(subject, purpose, object string, act Act, cats []string) (allow, deny *pRule) {
	ancestors := p.ancestors[purpose]
	for i, roles := -1, p.roles[subject]; i < len(roles); i++ {
		who := subject
		if i >= 0 {
			who = roles[i]
		}
		for _, r := range p.bySubject[who] {
			if r.act != act || !purposeCovers(r.purpose, purpose, ancestors) || !objectCovers(r, object, cats) {
				continue
			}
			if r.deny && (deny == nil || r.line < deny.line) {
				deny = r
			}
			if !r.deny && (allow == nil || r.line < allow.line) {
				allow = r
			}
		}
	}
	return allow, deny
}

// purposeCovers: a rule for "*" covers every purpose and none; a rule for a
// purpose covers it and every purpose below it in the g3 tree.
func purposeCovers(rulePurpose, purpose string, ancestors []string) bool {
	return rulePurpose == "*" || rulePurpose == purpose || contains(ancestors, rulePurpose)
}

// objectCovers: a rule's object is one of the object's categories, or a
// pattern that matches the object.
func objectCovers(r *pRule, object string, cats []string) bool {
	if r.category {
		return contains(cats, r.obj)
	}
	return MatchPattern(r.obj, object)
}

func noAllowReason(cats []string, purpose string) string {
	if len(cats) == 1 {
		return fmt.Sprintf("no allow for category %s %s", cats[0], purposePhrase(purpose))
	}
	return fmt.Sprintf("no allow for any of the categories %s %s", strings.Join(cats, ", "), purposePhrase(purpose))
}

func purposePhrase(purpose string) string {
	if purpose == "" {
		return "without a declared purpose"
	}
	return fmt.Sprintf("with purpose %q", purpose)
}

func first(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}
