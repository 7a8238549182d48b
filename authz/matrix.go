package authz

import "slices"

// Outcome is what the rules say about one act in a Matrix row.
type Outcome string

// The outcomes of a matrix cell. OutcomeNone means no rule applies: the act
// is refused on classified data, for want of an allow.
const (
	OutcomeNone  Outcome = ""
	OutcomeAllow Outcome = "allow"
	OutcomeDeny  Outcome = "deny"
)

// MatrixActs are the acts of a MatrixRow's Outcomes, in order.
var MatrixActs = [4]Act{ActRead, ActWrite, ActExecute, ActDDL}

// AnyPurpose is the Purpose of a MatrixRow that holds whatever the
// declared purpose, and also when none is declared: the "*" rules alone.
const AnyPurpose = "*"

// MatrixRow is what one department may do with one kind of data for one
// purpose, as Decide would judge it.
type MatrixRow struct {
	Department string
	// DepartmentPath is the department and the roles it belongs to, one
	// per level ("payroll_clerk", "hr"); their rules apply too.
	DepartmentPath []string
	// Purpose is AnyPurpose or a purpose of the policy; PurposePath is it
	// and its parents up to the root of its tree, whose rules cover it.
	Purpose     string
	PurposePath []string
	// Data is a category, or an object a p rule names instead of one: a
	// column pattern, function:..., extension:... or ddl.
	Data     string
	Category bool
	// Outcomes are per act, in the order of MatrixActs.
	Outcomes [4]Outcome
}

// Matrix lists, for every department (g right sides and p subjects), every
// purpose (AnyPurpose, then the purpose trees) and every kind of data
// (categories, then the other objects p rules name), the effect of the
// rules on each act. Each cell is the verdict of the same rule matching
// Decide uses: a category row counts the rules on the category and on its
// parent categories, an object row the rules whose pattern covers it.
//
// A row is left out when no rule applies, and a purpose row when it says
// exactly what the AnyPurpose row for the same department and data says.
func (p *Policy) Matrix() []MatrixRow {
	var out []MatrixRow
	purposes := append([]string{AnyPurpose}, p.outline.purposeTree()...)
	for _, dept := range p.outline.departments {
		for _, purpose := range purposes {
			for _, data := range p.outline.data {
				row := p.matrixRow(dept, purpose, data)
				if row.Outcomes == ([4]Outcome{}) {
					continue
				}
				if purpose != AnyPurpose && row.Outcomes == p.matrixRow(dept, AnyPurpose, data).Outcomes {
					continue
				}
				out = append(out, row)
			}
		}
	}
	return out
}

// matrixRow judges every act of one cell.
func (p *Policy) matrixRow(dept, purpose, data string) MatrixRow {
	kind, _ := objectKind(data)
	row := MatrixRow{Department: dept, DepartmentPath: p.outline.path("g", dept), Purpose: purpose,
		Data: data, Category: kind == objCategory}
	asked := purpose
	if purpose == AnyPurpose {
		asked = "" // only "*" rules cover a request without a purpose
	} else {
		row.PurposePath = p.outline.path("g3", purpose)
	}
	object, cats := data, []string(nil)
	if row.Category {
		object, cats = "", p.withParents(data) // "" matches no pattern rule
	}
	for i, act := range MatrixActs {
		allow, deny := p.match(dept, asked, object, act, cats)
		switch {
		case deny != nil:
			row.Outcomes[i] = OutcomeDeny
		case allow != nil:
			row.Outcomes[i] = OutcomeAllow
		}
	}
	return row
}

// withParents is a category and its parent categories, all levels.
func (p *Policy) withParents(category string) []string {
	out := []string{category}
	for i := 0; i < len(out); i++ {
		for _, parent := range p.parents[out[i]] {
			if !slices.Contains(out, parent) {
				out = append(out, parent)
			}
		}
	}
	return out
}

// outline is the names of a policy in the order the file first gives them,
// for showing the policy to people.
type outline struct {
	departments []string                       // g right sides and p subjects
	data        []string                       // categories, then other p objects
	purposes    []string                       // both sides of g3, and p purposes
	parents     map[string]map[string][]string // "g" or "g3" -> name -> direct parents
}

// outlineOf collects the outline of well-formed rules in file order.
func outlineOf(rules []rule) outline {
	o := outline{parents: map[string]map[string][]string{"g": {}, "g3": {}}}
	var categories, objects []string
	add := func(list *[]string, name string) {
		if !slices.Contains(*list, name) {
			*list = append(*list, name)
		}
	}
	for _, r := range rules {
		f := r.fields
		switch r.ptype {
		case "g":
			add(&o.departments, f[1])
			o.parents["g"][f[0]] = append(o.parents["g"][f[0]], f[1])
		case "g2":
			add(&categories, f[1])
		case "g3":
			add(&o.purposes, f[1])
			add(&o.purposes, f[0])
			o.parents["g3"][f[0]] = append(o.parents["g3"][f[0]], f[1])
		case "p":
			add(&o.departments, f[0])
			if f[1] != "*" {
				add(&o.purposes, f[1])
			}
			if kind, _ := objectKind(f[2]); kind == objCategory {
				add(&categories, f[2])
			} else {
				add(&objects, f[2])
			}
		}
	}
	o.data = append(categories, objects...)
	return o
}

// purposeTree orders the purposes depth first from the roots, children
// after their parent, each level in file order. Purposes only reachable
// through a cycle come last.
func (o outline) purposeTree() []string {
	var out []string
	var visit func(name string)
	visit = func(name string) {
		if slices.Contains(out, name) {
			return
		}
		out = append(out, name)
		for _, child := range o.purposes {
			if slices.Contains(o.parents["g3"][child], name) {
				visit(child)
			}
		}
	}
	for _, name := range o.purposes {
		if len(o.parents["g3"][name]) == 0 {
			visit(name)
		}
	}
	for _, name := range o.purposes {
		visit(name)
	}
	return out
}

// path is name and its first parent, that one's first parent and so on,
// in the hierarchy of ptype ("g" or "g3"); it stops before a cycle.
func (o outline) path(ptype, name string) []string {
	out := []string{name}
	for {
		parents := o.parents[ptype][name]
		if len(parents) == 0 || slices.Contains(out, parents[0]) {
			return out
		}
		name = parents[0]
		out = append(out, name)
	}
}
