package grants_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/grants"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/sqlscan"
)

// The compiled grants are the analysis's oracle: under a department's
// role, PostgreSQL checks column privileges when the executor starts, which
// EXPLAIN does. Every statement PostgreSQL refuses for a privilege must be
// one pgguard refuses under every purpose (soundness); of those PostgreSQL
// allows, the share pgguard allows under some purpose is its precision.

// extraSchema adds what the demo schema lacks: a view, a partitioned
// table, an inheriting table.
const extraSchema = `
CREATE VIEW crm.customer_contacts AS SELECT id, first_name, email, city FROM crm.customers;
CREATE TABLE hr.payslips (employee_id bigint, month date, net numeric) PARTITION BY RANGE (month);
CREATE TABLE hr.payslips_2025 PARTITION OF hr.payslips FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE hr.payslips_2026 PARTITION OF hr.payslips FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE crm.vip_customers (tier int) INHERITS (crm.customers);
`

// oracleStatements is PGGUARD_DIFFERENTIAL_STATEMENTS, or a bounded number
// for CI.
func oracleStatements() int {
	if n, err := strconv.Atoi(os.Getenv("PGGUARD_DIFFERENTIAL_STATEMENTS")); err == nil && n > 0 {
		return n
	}
	return 150
}

func TestDifferentialAgainstPostgreSQL(t *testing.T) {
	o := newOracle(t, pgtest.Shared(t))
	gen := newGenerator(o.snap, rand.New(rand.NewPCG(7, 11)))
	var st tally
	for i := 0; i < oracleStatements(); i++ {
		o.compare(t, &st, gen.statement())
	}
	t.Logf("%s", st)
	if st.dbAllowed == 0 || st.dbRefused == 0 {
		t.Fatalf("the corpus proves little: %s", st)
	}
}

// oracle is the differential test's world: the demo schema and the extra
// relations, with the policy's grants applied.
type oracle struct {
	pg       *pgtest.Server
	pol      *authz.Policy
	snap     *catalog.Snapshot
	plan     *grants.Plan
	super    *pgx.Conn
	purposes []string
}

// newOracle builds it on pg.
func newOracle(t *testing.T, pg *pgtest.Server) *oracle {
	t.Helper()
	pg, pol, _ := worldOn(t, pg)
	pg.MustExec(t, "postgres", extraSchema)
	snap := load(t, pg)
	plan, super := applied(t, pg, pol, snap)
	// A generated statement may plan for long; none of the corpus needs to.
	if _, err := super.Exec(context.Background(), "SET statement_timeout = '10s'"); err != nil {
		t.Fatal(err)
	}
	return &oracle{pg: pg, pol: pol, snap: snap, plan: plan, super: super, purposes: policyPurposes(pol)}
}

// compare runs sql through pgguard's analysis and, under each department's
// role, through PostgreSQL, counts the outcomes, and fails the test for an
// unsound pair. It reports whether sql was unsound for some department.
func (o *oracle) compare(t *testing.T, st *tally, sql string) bool {
	t.Helper()
	res := sqlscan.Analyze(sql, o.snap, sqlscan.Context{Database: "postgres", SearchPath: []string{}})
	unsound := false
	for _, d := range o.plan.Departments {
		dbAllows, ok, why := explainAs(t, o.super, d.Role, sql)
		if !ok {
			st.otherErrors++ // PostgreSQL rejects it for another reason
			continue
		}
		allowedUnder := decide(o.pol, d.Name, o.purposes, res)
		switch {
		case !dbAllows && len(allowedUnder) > 0:
			if kind := refusalBeside(res, why); kind != "" {
				st.excuse(kind)
				continue
			}
			unsound = true
			st.unsound++
			t.Errorf("unsound: %s may run %q for purpose %q, but PostgreSQL refuses it: %s", d.Name, sql, allowedUnder[0], why)
		case dbAllows && len(allowedUnder) == 0 && res.Denial() == nil && !o.granted(d, res):
			// PostgreSQL checks the privileges of what is left after
			// planning: a sub-select that constant folding removed is
			// never checked. pgguard refuses the column it names, rightly.
			st.excuse(excusePlannerRemoved)
			if testing.Verbose() {
				t.Logf("PostgreSQL lets %s run what uses columns it holds no privilege on:\n%s", d.Name, sql)
			}
			continue
		}
		reason := ""
		switch {
		case res.Denial() != nil:
			reason = res.Denial().Code
		case len(allowedUnder) == 0 && o.eachAllowed(d.Name, res):
			reason = purposeSplit
		}
		st.count(dbAllows, allowedUnder, reason)
		if dbAllows && len(allowedUnder) == 0 && reason == "" && testing.Verbose() {
			t.Logf("imprecise: PostgreSQL lets %s run what pgguard refuses under every purpose (%v):\n%s", d.Name, res.Denial(), sql)
		}
	}
	return unsound
}

// What PostgreSQL decides differently from pgguard for reasons beside the
// compiled column privileges.
const (
	excusePlannerRemoved = "PostgreSQL allowed: the planner removed the part that reads a column the department may not read"
	excuseFunction       = "PostgreSQL refused EXECUTE of a function it reserves to administrators"
	excuseRowsOnly       = "PostgreSQL refused a relation the statement reads no column of (its rows alone: a side channel the security model names)"
)

var deniedRelation = regexp.MustCompile(`^permission denied for (?:table|view|materialized view|foreign table) (.+)$`)

// refusalBeside names why PostgreSQL refused what pgguard allows, when the
// reason is not a column privilege pgguard overlooked: a function's own
// EXECUTE privilege, which the grants do not compile, or a relation that
// pgguard saw no column of read, for whose rows PostgreSQL asks for a
// privilege on some column. Empty for anything else: an unsound pair.
func refusalBeside(res *sqlscan.Result, why string) string {
	if strings.HasPrefix(why, "permission denied for function ") {
		return excuseFunction
	}
	m := deniedRelation.FindStringSubmatch(why)
	if m == nil {
		return ""
	}
	for _, s := range res.Statements {
		for _, a := range s.Accesses {
			if a.Table == m[1] {
				return ""
			}
		}
	}
	return excuseRowsOnly
}

// eachAllowed reports whether each of the statement's accesses, on its
// own, is allowed to the department for some purpose.
func (o *oracle) eachAllowed(dept string, res *sqlscan.Result) bool {
	for _, s := range res.Statements {
		for _, a := range s.Accesses {
			one := []authz.Access{{Column: a.Schema + "." + a.Table + "." + a.Column, Act: authz.Act(a.Act)}}
			if !slices.ContainsFunc(o.purposes, func(p string) bool { return o.pol.Decide(dept, p, one).Allowed }) {
				return false
			}
		}
	}
	return true
}

// granted reports whether the department's compiled grants cover every
// column access pgguard found in the statement.
func (o *oracle) granted(d grants.Department, res *sqlscan.Result) bool {
	for _, s := range res.Statements {
		for _, a := range s.Accesses {
			i := slices.IndexFunc(d.Tables, func(t grants.Table) bool { return t.Schema == a.Schema && t.Name == a.Table })
			if i < 0 {
				return false
			}
			cols := d.Tables[i].Select
			if a.Act == sqlscan.Write {
				cols = d.Tables[i].Update
			}
			if !slices.Contains(cols, a.Column) {
				return false
			}
		}
	}
	return true
}

// explainAs runs EXPLAIN of sql as role: allowed, or refused for a
// privilege (why is PostgreSQL's message); ok is false for any other
// error.
func explainAs(t *testing.T, conn *pgx.Conn, role, sql string) (allowed, ok bool, why string) {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := conn.Exec(ctx, "RESET ROLE"); err != nil {
			t.Fatal(err)
		}
	}()
	_, err := conn.Exec(ctx, "EXPLAIN "+sql)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return true, true, ""
	case errors.As(err, &pe) && pe.Code == "42501":
		return false, true, pe.Message
	case errors.As(err, &pe):
		return false, false, pe.Code + " " + pe.Message
	}
	t.Fatalf("EXPLAIN as %s: %v", role, err)
	return false, false, ""
}

// decide lists the purposes under which pgguard lets the department run
// the analysed statement.
func decide(pol *authz.Policy, dept string, purposes []string, res *sqlscan.Result) []string {
	if res.Denial() != nil {
		return nil
	}
	var accesses []authz.Access
	for _, s := range res.Statements {
		for _, a := range s.Accesses {
			accesses = append(accesses, authz.Access{Column: a.Schema + "." + a.Table + "." + a.Column, Act: authz.Act(a.Act)})
		}
	}
	var out []string
	for _, p := range purposes {
		if pol.Decide(dept, p, accesses).Allowed {
			out = append(out, p)
		}
	}
	return out
}

func policyPurposes(pol *authz.Policy) []string {
	out := []string{""}
	for _, r := range pol.Rules() {
		f := strings.Split(r, ", ")
		switch {
		case f[0] == "p" && f[2] != "*":
			out = append(out, f[2])
		case f[0] == "g3":
			out = append(out, f[1], f[2])
		}
	}
	sort.Strings(out)
	return out
}

// tally counts the outcomes.
type tally struct {
	dbAllowed, dbRefused, bothAllow, refusedByDesign int
	unsound, otherErrors                             int
	reasons                                          map[string]int
	// excused are the pairs where PostgreSQL decided for a reason beside
	// the compiled column privileges, by reason.
	excused map[string]int
}

func (s *tally) excuse(kind string) {
	if s.excused == nil {
		s.excused = map[string]int{}
	}
	s.excused[kind]++
}

// purposeSplit is the reason for refusals by design that come from the
// policy, not the analysis: every column the statement uses is allowed for
// some purpose, which is what the department's ceiling grants, but no one
// purpose allows them all together.
const purposeSplit = "purpose_split"

func (s *tally) count(dbAllows bool, allowedUnder []string, reason string) {
	if !dbAllows {
		s.dbRefused++
		return
	}
	s.dbAllowed++
	switch {
	case len(allowedUnder) > 0:
		s.bothAllow++
	case reason != "":
		s.refusedByDesign++
		if s.reasons == nil {
			s.reasons = map[string]int{}
		}
		s.reasons[reason]++
	}
}

// precision is the share of the pairs PostgreSQL allowed, less the
// refusals by design, that pgguard allowed under some purpose.
func (s tally) precision() float64 {
	if n := s.dbAllowed - s.refusedByDesign; n > 0 {
		return float64(s.bothAllow) / float64(n)
	}
	return 0
}

func (s tally) String() string {
	precision := s.precision()
	out := fmt.Sprintf("PostgreSQL allowed %d and refused %d (department, statement) pairs (%d pairs failed for other reasons); "+
		"unsound (pgguard allowed, PostgreSQL refused): %d; pgguard allowed %d of those PostgreSQL allowed "+
		"under some purpose: precision %.1f%% without %d refusals by design %s",
		s.dbAllowed, s.dbRefused, s.otherErrors, s.unsound, s.bothAllow, 100*precision, s.refusedByDesign, byCount(s.reasons))
	if len(s.excused) > 0 {
		out += "; not counted, decided for reasons beside the column privileges: " + byCount(s.excused)
	}
	return out
}

// byCount lists counts by key, most frequent first.
func byCount(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return "(" + strings.Join(parts, "; ") + ")"
}

// generator writes random statements over the catalog's tables.
type generator struct {
	rnd    *rand.Rand
	tables []*catalog.Relation
}

func newGenerator(snap *catalog.Snapshot, rnd *rand.Rand) *generator {
	g := &generator{rnd: rnd}
	for _, r := range snap.Relations() {
		if (r.Schema == "crm" || r.Schema == "hr") && len(r.Columns) > 0 {
			g.tables = append(g.tables, r)
		}
	}
	return g
}

func (g *generator) table() *catalog.Relation { return g.tables[g.rnd.IntN(len(g.tables))] }

func (g *generator) column(r *catalog.Relation, alias string) string {
	return alias + "." + pgx.Identifier{r.Columns[g.rnd.IntN(len(r.Columns))]}.Sanitize()
}

func name(r *catalog.Relation) string { return pgx.Identifier{r.Schema, r.Name}.Sanitize() }

// statement picks one of the shapes.
func (g *generator) statement() string {
	switch g.rnd.IntN(9) {
	case 0:
		a, b := g.table(), g.table()
		return fmt.Sprintf("SELECT %s, %s FROM %s a JOIN %s b ON %s IS NOT DISTINCT FROM %s",
			g.column(a, "a"), g.column(b, "b"), name(a), name(b), g.column(a, "a"), g.column(b, "b"))
	case 1:
		a, b := g.table(), g.table()
		return fmt.Sprintf("SELECT count(*) FROM %s a WHERE EXISTS (SELECT 1 FROM %s b WHERE %s::text = %s::text)",
			name(a), name(b), g.column(b, "b"), g.column(a, "a"))
	case 2:
		a := g.table()
		return fmt.Sprintf("WITH x AS (SELECT %s AS v FROM %s a) SELECT v FROM x", g.column(a, "a"), name(a))
	case 3:
		a := g.table()
		return fmt.Sprintf("SELECT row_to_json(a) FROM %s a", name(a))
	case 4:
		a := g.table()
		return fmt.Sprintf("SELECT max(%s::text) FROM %s a GROUP BY %s", g.column(a, "a"), name(a), g.column(a, "a"))
	case 5:
		a := g.table()
		return fmt.Sprintf("SELECT 1 FROM %s a ORDER BY %s", name(a), g.column(a, "a"))
	case 6:
		a := g.table()
		col := a.Columns[g.rnd.IntN(len(a.Columns))]
		return fmt.Sprintf("UPDATE %s a SET %s = a.%s WHERE %s IS NULL RETURNING %s",
			name(a), pgx.Identifier{col}.Sanitize(), pgx.Identifier{col}.Sanitize(), g.column(a, "a"), g.column(a, "a"))
	case 7:
		a := g.table()
		return fmt.Sprintf("DELETE FROM %s a WHERE %s IS NULL", name(a), g.column(a, "a"))
	default:
		a := g.table()
		return fmt.Sprintf("SELECT %s, %s FROM %s a", g.column(a, "a"), g.column(a, "a"), name(a))
	}
}
