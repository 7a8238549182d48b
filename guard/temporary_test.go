package guard_test

// Relations pgguard has no definition for: the session's temporary
// relations, which PostgreSQL finds before any table of the same name, and
// relations that DDL of the session's open transaction changed, which the
// catalog (read by another session) cannot see. A statement that may
// resolve to one is refused.

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

func TestSoundnessTemporaryRelationsShadowTables(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	// Under invoicing finance may read customers' IBANs, under financial
	// reporting employees' salaries but no IBAN. A temporary view named
	// like hr.salaries, made under the first purpose, would hand IBANs out
	// under the second.
	view := q("CREATE TEMP VIEW salaries AS SELECT iban AS gross_monthly FROM crm.customers")
	read := q("SELECT gross_monthly FROM salaries")
	cases := []struct {
		name string
		msgs [][]pgproto3.FrontendMessage
	}{
		{"in later messages", [][]pgproto3.FrontendMessage{
			{view}, {q("SET pgguard.purpose = 'financial_reporting'")}, {q("SET search_path = hr, public")}, {read}}},
		{"in one message", [][]pgproto3.FrontendMessage{
			{q("CREATE TEMP VIEW salaries AS SELECT iban AS gross_monthly FROM crm.customers; SET pgguard.purpose = 'financial_reporting'; SET search_path = hr, public; SELECT gross_monthly FROM salaries")}}},
		{"pipelined", [][]pgproto3.FrontendMessage{
			{view, q("SET pgguard.purpose = 'financial_reporting'"), q("SET search_path = hr, public"), read}}},
		{"extended protocol", [][]pgproto3.FrontendMessage{
			{view}, {q("SET pgguard.purpose = 'financial_reporting'; SET search_path = hr, public")},
			append(extended("", "SELECT gross_monthly FROM salaries"), &pgproto3.Sync{})}},
		{"temporary table renamed to a table's name", [][]pgproto3.FrontendMessage{
			{q("CREATE TEMP TABLE stash AS SELECT iban AS gross_monthly FROM crm.customers")},
			{q("ALTER TABLE stash RENAME TO salaries")},
			{q("SET pgguard.purpose = 'financial_reporting'; SET search_path = hr, public")}, {read}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			var out outcome
			for _, m := range c.msgs {
				out = r.send(m...)
			}
			if out.lastRows > 0 || out.lastErr != "42501" {
				t.Fatalf("want the read refused (42501) and no rows, got %d rows, errors %v", out.lastRows, out.errors)
			}
		})
	}
	// Without a temporary relation of that name the same read is allowed.
	conn := w.connect(t, "finance_app", "-c pgguard.purpose=financial_reporting")
	mustExec(t, conn, "SET search_path = hr, public")
	mustExec(t, conn, "SELECT gross_monthly FROM salaries")
	// And a temporary table stays usable in the message that creates it.
	mustExec(t, conn, "CREATE TEMP TABLE stage (n int); INSERT INTO stage VALUES (1); SELECT n FROM stage")
}

func TestSoundnessUncommittedDDL(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS owned;
		GRANT USAGE, CREATE ON SCHEMA owned TO finance_app;
		DROP TABLE IF EXISTS owned.ledger; CREATE TABLE owned.ledger (id text);
		ALTER TABLE owned.ledger OWNER TO finance_app`)
	// A view made under invoicing, renamed in the open transaction to the
	// name of an unclassified table, read under financial reporting.
	steps := []string{
		"BEGIN",
		"CREATE VIEW owned.v AS SELECT iban AS id FROM crm.customers",
		"ALTER TABLE owned.ledger RENAME TO ledger_old",
		"ALTER VIEW owned.v RENAME TO ledger",
		"SET LOCAL pgguard.purpose = 'financial_reporting'",
		"SELECT id FROM owned.ledger",
	}
	t.Run("one statement per message", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		var out outcome
		for _, s := range steps {
			out = r.send(q(s))
		}
		if out.lastRows > 0 || out.lastErr != "42501" {
			t.Fatalf("want the read refused, got %d rows, errors %v", out.lastRows, out.errors)
		}
		r.send(q("ROLLBACK"))
	})
	t.Run("one message", func(t *testing.T) {
		r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
		text := ""
		for _, s := range steps {
			text += s + "; "
		}
		out := r.send(q(text))
		if out.rows > 0 || out.lastErr != "42501" {
			t.Fatalf("want the message refused, got %d rows, errors %v", out.rows, out.errors)
		}
		r.send(q("ROLLBACK"))
	})
	// A column added in the open transaction is read back from the
	// session: decided on at once, and gone with the rollback.
	conn := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, "ALTER TABLE owned.ledger ADD COLUMN note text")
	mustExec(t, conn, "SELECT note FROM owned.ledger")
	mustExec(t, conn, "ROLLBACK")
	if err := execSQL(conn, "SELECT note FROM owned.ledger"); err == nil {
		t.Fatal("a column rolled back was decided on")
	}
	mustExec(t, conn, "SELECT id FROM owned.ledger")
}

// TestTemporaryTablesAcrossMessages: the staging pattern of ETL jobs, a
// temporary table filled in one statement and read in the next, works as
// it does directly; what was copied into it keeps the policy of where it
// came from, under every purpose the session declares later.
func TestTemporaryTablesAcrossMessages(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	sales := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	for _, sql := range []string{
		"CREATE TEMP TABLE stage (id int, status text)",
		"INSERT INTO stage VALUES (10, 'packed')",
		"SELECT id, status FROM stage",
		"UPDATE crm.orders o SET status = s.status FROM stage s WHERE o.id = s.id",
		"BEGIN",
		"CREATE TEMP TABLE batch (id int) ON COMMIT DROP",
		"INSERT INTO batch SELECT id FROM stage",
		"SELECT count(*) FROM batch",
		"COMMIT",
	} {
		mustExec(t, sales, sql)
	}
	if _, err := sales.CopyFrom(ctx, pgx.Identifier{"stage"}, []string{"id", "status"}, pgx.CopyFromRows([][]any{{11, "new"}})); err != nil {
		t.Fatalf("COPY into a temporary table: %v", err)
	}
	var n int
	if err := sales.QueryRow(ctx, "SELECT count(*) FROM stage").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows in stage: %d, %v", n, err)
	}

	cases := []struct{ name, setup, read string }{
		{"copied, read under another purpose",
			"CREATE TEMP TABLE stash AS SELECT iban FROM crm.customers", "SELECT * FROM stash"},
		{"inserted into a child, read through its parent",
			"CREATE TEMP TABLE parent (x text); CREATE TEMP TABLE child () INHERITS (parent); INSERT INTO child SELECT iban FROM crm.customers",
			"SELECT x FROM parent"},
		{"renamed",
			"CREATE TEMP TABLE a AS SELECT iban FROM crm.customers; ALTER TABLE a RENAME TO b", "SELECT * FROM b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
			mustExec(t, conn, c.setup)
			mustExec(t, conn, c.read) // invoicing may read IBANs
			mustExec(t, conn, "SET pgguard.purpose = 'financial_reporting'")
			expectDenied(t, execSQL(conn, c.read), "iban")
		})
	}
	t.Run("in one message", func(t *testing.T) {
		conn := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
		expectDenied(t, execSQL(conn, "CREATE TEMP TABLE s AS SELECT iban FROM crm.customers; "+
			"SET pgguard.purpose = 'financial_reporting'; SELECT * FROM s"), "iban")
	})
}
