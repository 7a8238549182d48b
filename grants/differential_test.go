package grants_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
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
	pg, pol, _ := world(t)
	pg.MustExec(t, "postgres", extraSchema)
	snap := load(t, pg)
	plan, super := applied(t, pg, pol, snap)
	gen := newGenerator(snap, rand.New(rand.NewPCG(7, 11)))
	purposes := policyPurposes(pol)
	var st tally
	for i := 0; i < oracleStatements(); i++ {
		sql := gen.statement()
		res := sqlscan.Analyze(sql, snap, sqlscan.Context{Database: "postgres", SearchPath: []string{}})
		for _, d := range plan.Departments {
			dbAllows, ok := explainAs(t, super, d.Role, sql)
			if !ok {
				continue // PostgreSQL rejects it for another reason
			}
			allowedUnder := decide(pol, d.Name, purposes, res)
			st.count(dbAllows, allowedUnder, res.Denial())
			if !dbAllows && len(allowedUnder) > 0 {
				t.Errorf("unsound: %s may run %q for purpose %q, but PostgreSQL refuses it", d.Name, sql, allowedUnder[0])
			}
		}
	}
	t.Logf("%s", st)
	if st.dbAllowed == 0 || st.dbRefused == 0 {
		t.Fatalf("the corpus proves little: %s", st)
	}
}

// explainAs runs EXPLAIN of sql as role: allowed, or refused for a
// privilege; ok is false for any other error.
func explainAs(t *testing.T, conn *pgx.Conn, role, sql string) (allowed, ok bool) {
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
		return true, true
	case errors.As(err, &pe) && pe.Code == "42501":
		return false, true
	}
	return false, false
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
	reasons                                          map[string]int
}

func (s *tally) count(dbAllows bool, allowedUnder []string, d *sqlscan.Denial) {
	if !dbAllows {
		s.dbRefused++
		return
	}
	s.dbAllowed++
	switch {
	case len(allowedUnder) > 0:
		s.bothAllow++
	case d != nil:
		s.refusedByDesign++
		if s.reasons == nil {
			s.reasons = map[string]int{}
		}
		s.reasons[d.Code]++
	}
}

func (s tally) String() string {
	precision := 0.0
	if n := s.dbAllowed - s.refusedByDesign; n > 0 {
		precision = float64(s.bothAllow) / float64(n)
	}
	return fmt.Sprintf("PostgreSQL allowed %d and refused %d (department, statement) pairs; pgguard allowed %d of the allowed "+
		"under some purpose: precision %.1f%% without %d refusals by design %v; no unsound pair may remain",
		s.dbAllowed, s.dbRefused, s.bothAllow, 100*precision, s.refusedByDesign, s.reasons)
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
