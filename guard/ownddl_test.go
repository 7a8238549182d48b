package guard_test

// The session's own uncommitted DDL: what a transaction created, altered,
// renamed or dropped is read back from the server inside that transaction
// at every confirmation, and statements after it are decided on the
// server's own definitions, with rollbacks, savepoints and renames as the
// server applies them.

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

func TestOwnUncommittedDDL(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS owned;
		GRANT USAGE, CREATE ON SCHEMA owned TO finance_app;
		DROP TABLE IF EXISTS owned.ledger CASCADE; CREATE TABLE owned.ledger (id text);
		ALTER TABLE owned.ledger OWNER TO finance_app;
		INSERT INTO owned.ledger VALUES ('a')`)
	// Each step's expected outcome: "" runs, or the SQLSTATE it fails
	// with; "iban" is a refusal by policy naming crm.customers.iban.
	type step struct{ sql, want string }
	cases := []struct {
		name  string
		steps []step
	}{
		{"a migration creates and seeds a table", []step{
			{"BEGIN", ""},
			{"CREATE TABLE owned.m1 (id int PRIMARY KEY, note text)", ""},
			{"INSERT INTO owned.m1 VALUES (1, 'one'), (2, 'two')", ""},
			{"UPDATE owned.m1 SET note = upper(note) WHERE id = 2", ""},
			{"SELECT id, note FROM owned.m1 ORDER BY id", ""},
			{"SELECT missing FROM owned.m1", "42703"},
			{"COMMIT", ""},
			{"SELECT id, note FROM owned.m1", ""},
			{"DROP TABLE owned.m1", ""},
		}},
		{"a migration adds and backfills a column, then rolls back", []step{
			{"BEGIN", ""},
			{"ALTER TABLE owned.ledger ADD COLUMN note text", ""},
			{"UPDATE owned.ledger SET note = id", ""},
			{"SELECT note FROM owned.ledger", ""},
			{"ROLLBACK", ""},
			{"SELECT note FROM owned.ledger", "42703"},
			{"SELECT id FROM owned.ledger", ""},
		}},
		{"a view over another department's column", []step{
			{"BEGIN", ""},
			{"CREATE VIEW owned.peek AS SELECT iban AS id FROM crm.customers", ""},
			{"SELECT id FROM owned.peek", ""},
			{"SET pgguard.purpose = 'financial_reporting'", ""},
			{"SELECT id FROM owned.peek", "iban"},
			{"SELECT * FROM owned.peek", "iban"},
			{"ROLLBACK", ""},
		}},
		{"a view renamed onto a table's name", []step{
			{"BEGIN", ""},
			{"CREATE VIEW owned.v AS SELECT iban AS id FROM crm.customers", ""},
			{"SET pgguard.purpose = 'financial_reporting'", ""},
			{"ALTER TABLE owned.ledger RENAME TO ledger_old", ""},
			{"ALTER VIEW owned.v RENAME TO ledger", ""},
			{"SELECT id FROM owned.ledger", "iban"},
			{"SELECT id FROM owned.ledger_old", ""},
			{"ROLLBACK", ""},
			{"SELECT id FROM owned.ledger", ""},
		}},
		{"a column renamed, and a view over it", []step{
			{"BEGIN", ""},
			{"CREATE TABLE owned.r1 (id int, note text)", ""},
			{"CREATE VIEW owned.rv AS SELECT note FROM owned.r1", ""},
			{"ALTER TABLE owned.r1 RENAME COLUMN note TO remark", ""},
			{"SELECT note FROM owned.r1", "42703"},
			{"SELECT remark FROM owned.r1", ""},
			{"SELECT note FROM owned.rv", ""},
			// The view is replaced by one over another department's column.
			{"CREATE OR REPLACE VIEW owned.rv AS SELECT iban AS note FROM crm.customers", ""},
			{"SET pgguard.purpose = 'financial_reporting'", ""},
			{"SELECT note FROM owned.rv", "iban"},
			{"ROLLBACK", ""},
		}},
		{"a table created in a savepoint rolled back to", []step{
			{"BEGIN", ""},
			{"SAVEPOINT a", ""},
			{"CREATE TABLE owned.sp (x text)", ""},
			{"SELECT x FROM owned.sp", ""},
			{"ROLLBACK TO SAVEPOINT a", ""},
			{"SELECT x FROM owned.sp", "42P01"},
			{"CREATE VIEW owned.sp AS SELECT iban AS x FROM crm.customers", ""},
			{"SET pgguard.purpose = 'financial_reporting'", ""},
			{"SAVEPOINT b", ""},
			{"DROP VIEW owned.sp", ""},
			{"CREATE TABLE owned.sp (x text)", ""},
			{"SELECT x FROM owned.sp", ""},
			{"ROLLBACK TO SAVEPOINT b", ""},
			{"SELECT x FROM owned.sp", "iban"},
			{"ROLLBACK", ""},
		}},
		{"a name that needs quoting", []step{
			{"BEGIN", ""},
			{`CREATE TABLE owned."we""ird\,{x}" (a int)`, ""},
			{`INSERT INTO owned."we""ird\,{x}" VALUES (1)`, ""},
			{`SELECT a FROM owned."we""ird\,{x}"`, ""},
			{"ROLLBACK", ""},
		}},
		{"a table dropped in the transaction", []step{
			{"BEGIN", ""},
			{"DROP TABLE owned.ledger", ""},
			{"SELECT id FROM owned.ledger", "42P01"},
			{"ROLLBACK", ""},
			{"SELECT id FROM owned.ledger", ""},
		}},
		{"a sequence stays refused", []step{
			{"BEGIN", ""},
			{"CREATE SEQUENCE owned.sq", ""},
			{"SELECT last_value FROM owned.sq", "42501"},
			{"ROLLBACK", ""},
		}},
		{"outside READ COMMITTED the names stay refused", []step{
			{"BEGIN ISOLATION LEVEL REPEATABLE READ", ""},
			{"CREATE TABLE owned.rr (x int)", ""},
			{"SELECT x FROM owned.rr", "42501"},
			{"ROLLBACK", ""},
		}},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
			for _, s := range c.steps {
				// An expected error fails the transaction: a savepoint
				// around it keeps the steps after it going.
				inTx := s.want != "" && conn.PgConn().TxStatus() != 'I'
				if inTx {
					mustExec(t, conn, "SAVEPOINT step")
				}
				_, err := conn.Exec(ctx, s.sql)
				switch {
				case s.want == "" && err != nil:
					t.Fatalf("%s: %v", s.sql, err)
				case s.want == "":
				case s.want == "iban":
					expectDenied(t, err, "crm.customers.iban")
				case err == nil:
					t.Fatalf("%s: ran, want %s", s.sql, s.want)
				default:
					if pe := pgErr(t, err); pe.Code != s.want {
						t.Fatalf("%s: %s %s, want %s", s.sql, pe.Code, pe.Message, s.want)
					}
				}
				if inTx {
					mustExec(t, conn, "ROLLBACK TO SAVEPOINT step")
				}
			}
		})
	}
}

// TestOwnDDLInAPipeline: DDL sent as a prepared statement is followed like
// any other; a statement behind it in the same sync segment is refused,
// since the server has not yet been asked what the DDL did, and the same
// statement after the Sync is decided on the definition the server reports.
func TestOwnDDLInAPipeline(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS owned;
		GRANT USAGE, CREATE ON SCHEMA owned TO finance_app`)
	for _, purpose := range []string{"invoicing", "financial_reporting"} {
		t.Run(purpose, func(t *testing.T) {
			r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
			r.send(q("BEGIN"))
			ddl := extended("ddl", "CREATE VIEW owned.pv AS SELECT iban AS x FROM crm.customers")
			read := extended("", "SELECT x FROM owned.pv")
			msgs := append(append(ddl, read...), &pgproto3.Sync{})
			if out := r.send(msgs...); out.rows > 0 || out.lastErr != "42501" {
				t.Fatalf("read behind the DDL in its segment: want refused, got %d rows, errors %v", out.rows, out.errors)
			}
			// The refusal failed the transaction: do it again in two segments.
			r.send(q("ROLLBACK"))
			r.send(q("BEGIN"))
			r.send(append(extended("", "CREATE VIEW owned.pv AS SELECT iban AS x FROM crm.customers"), &pgproto3.Sync{})...)
			r.send(q("SET pgguard.purpose = '" + purpose + "'"))
			out := r.send(append(extended("", "SELECT x FROM owned.pv"), &pgproto3.Sync{})...)
			switch {
			case purpose == "invoicing" && (len(out.errors) > 0 || out.rows == 0):
				t.Fatalf("invoicing may read IBANs through the new view: %d rows, errors %v", out.rows, out.errors)
			case purpose == "financial_reporting" && (out.rows > 0 || out.lastErr != "42501"):
				t.Fatalf("financial reporting may not: %d rows, errors %v", out.rows, out.errors)
			}
			r.send(q("ROLLBACK"))
		})
	}
}
