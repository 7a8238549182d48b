package guard_test

// Another session's DDL: once it has committed, no statement that arrives
// after it may be decided on a definition from before it, whether the
// catalog reads the relations it named again one by one or as a whole.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/alert"
)

func TestOtherSessionsDDL(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	// Columns called secret in od are classified like an IBAN, which
	// financial reporting may not read; od.od_dad's and od.od_pt's
	// alone for the inheritance cases.
	w.addRules(t, "g2, od.od_child.secret, customer_financial",
		"g2, od.od_dad.secret, customer_financial", "g2, od.od_pt.secret, customer_financial")
	ctx := context.Background()
	// "" runs; "deny" is a refusal by policy.
	type step struct{ sql, want string }
	cases := []struct {
		name  string
		setup string // run directly, by finance_app's owner rights
		path  string // the reader's search_path, when not the default
		steps []step // SELECTs are the reader's, the rest the writer's
	}{
		{"a view's definition swapped", `CREATE VIEW od.od_v AS SELECT id::text AS a FROM crm.customers`, "", []step{
			{"SELECT a FROM od.od_v", ""},
			{"CREATE OR REPLACE VIEW od.od_v AS SELECT iban AS a FROM crm.customers", ""},
			{"SELECT a FROM od.od_v", "deny"},
		}},
		{"a decoy earlier on the path renamed away", `CREATE TABLE od.customers (id bigint, iban text)`, "od,crm", []step{
			{"SELECT iban FROM customers", ""},
			{"ALTER TABLE od.customers RENAME TO od_customers_old", ""},
			{"SELECT iban FROM customers", "deny"},
		}},
		{"a decoy earlier on the path moved to another schema", `CREATE TABLE od.customers (id bigint, iban text)`, "od,crm", []step{
			{"SELECT iban FROM customers", ""},
			{"ALTER TABLE od.customers SET SCHEMA od_archive", ""},
			{"SELECT iban FROM customers", "deny"},
		}},
		{"a table dropped and recreated as a view with other columns", `CREATE TABLE od.od_t (id bigint, a text)`, "", []step{
			{"SELECT * FROM od.od_t", ""},
			{"BEGIN; DROP TABLE od.od_t; CREATE VIEW od.od_t AS SELECT id, iban AS a FROM crm.customers; COMMIT", ""},
			{"SELECT * FROM od.od_t", "deny"},
		}},
		{"a classified view renamed onto a table's name", `CREATE TABLE od.od_plain (a text);
			CREATE VIEW od.od_secret AS SELECT iban AS a FROM crm.customers`, "", []step{
			{"SELECT a FROM od.od_plain", ""},
			{"BEGIN; ALTER TABLE od.od_plain RENAME TO od_plain_old; ALTER VIEW od.od_secret RENAME TO od_plain; COMMIT", ""},
			{"SELECT a FROM od.od_plain", "deny"},
		}},
		{"a column added to a parent reaches its child", `CREATE TABLE od.od_parent (id int);
			CREATE TABLE od.od_child () INHERITS (od.od_parent)`, "", []step{
			{"SELECT * FROM od.od_child", ""},
			{"ALTER TABLE od.od_parent ADD COLUMN secret text", ""},
			{"SELECT * FROM od.od_child", "deny"},
		}},
		{"a child with a classified column created under a table read before", `CREATE TABLE od.od_mom (id int, secret text)`, "", []step{
			{"SELECT secret FROM od.od_mom", ""},
			{"CREATE TABLE od.od_child () INHERITS (od.od_mom)", ""},
			// Without ONLY the child's rows are read too, and its column's
			// policy applies.
			{"SELECT secret FROM od.od_mom", "deny"},
			{"SELECT secret FROM ONLY od.od_mom", ""},
		}},
		{"a grandchild with a classified column created under a table read before", `CREATE TABLE od.od_mom (id int, secret text);
			CREATE TABLE od.od_mid () INHERITS (od.od_mom)`, "", []step{
			{"SELECT secret FROM od.od_mom", ""},
			{"CREATE TABLE od.od_child () INHERITS (od.od_mid)", ""},
			{"SELECT secret FROM od.od_mom", "deny"},
		}},
		{"a table made to inherit a classified column", `CREATE TABLE od.od_dad (id int, secret text);
			CREATE TABLE od.od_kid (id int, secret text)`, "", []step{
			{"SELECT secret FROM od.od_kid", ""},
			{"ALTER TABLE od.od_kid INHERIT od.od_dad", ""},
			{"SELECT secret FROM od.od_kid", "deny"},
		}},
		{"a table attached as a partition of a classified one", `CREATE TABLE od.od_pt (id int, secret text) PARTITION BY RANGE (id);
			CREATE TABLE od.od_p1 (id int, secret text)`, "", []step{
			{"SELECT secret FROM od.od_p1", ""},
			{"ALTER TABLE od.od_pt ATTACH PARTITION od.od_p1 FOR VALUES FROM (0) TO (10)", ""},
			{"SELECT secret FROM od.od_p1", "deny"},
		}},
		{"a view over a view whose base is swapped", `CREATE TABLE od.od_base (a text);
			CREATE VIEW od.od_top AS SELECT a FROM od.od_base`, "", []step{
			{"SELECT a FROM od.od_top", ""},
			{"BEGIN; ALTER TABLE od.od_base RENAME TO od_base_old; CREATE VIEW od.od_base AS SELECT iban AS a FROM crm.customers; COMMIT", ""},
			// The view still reads the renamed table, by OID.
			{"SELECT a FROM od.od_top", ""},
			{"SELECT a FROM od.od_base", "deny"},
		}},
	}
	w.pg.MustExec(t, "postgres", `GRANT CREATE ON DATABASE postgres TO finance_app`)
	writer := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Through pgguard, so that its catalog knows what the case starts from.
			setup := append([]string{"DROP SCHEMA IF EXISTS od, od_archive CASCADE", "CREATE SCHEMA od",
				"CREATE SCHEMA od_archive"}, strings.Split(c.setup, ";")...)
			for _, sql := range setup {
				if _, err := writer.Exec(ctx, sql); err != nil {
					t.Fatalf("setup %q: %v", sql, err)
				}
			}
			options := "-c pgguard.purpose=financial_reporting"
			if c.path != "" {
				options += " -c search_path=" + c.path
			}
			reader := w.connect(t, "finance_app", options)
			for i, s := range c.steps {
				conn := reader
				if !strings.HasPrefix(s.sql, "SELECT") {
					conn = writer
				}
				_, err := conn.Exec(ctx, s.sql)
				switch {
				case s.want == "" && err != nil:
					t.Fatalf("step %d %q: %v", i, s.sql, err)
				case s.want == "deny" && !isRefusal(err):
					t.Fatalf("step %d %q: want a refusal by policy, got %v", i, s.sql, err)
				}
			}
		})
	}
}

// isRefusal reports a refusal by policy: 42501 from pgguard, naming a
// classified column.
func isRefusal(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

// TestOtherSessionsDDLInALoop: one session swaps a view between a harmless
// and a classified definition in a loop while another reads it. Each read
// starts after one swap has completed and before the next begins (a lock
// between them), so it must be decided on exactly the definition in force:
// refused when the view reads IBANs, allowed when it does not, never the
// other way, though the catalog's read after one swap may run while the
// next commits.
func TestOtherSessionsDDLInALoop(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", `CREATE SCHEMA IF NOT EXISTS owned;
		GRANT USAGE, CREATE ON SCHEMA owned TO finance_app;
		DROP VIEW IF EXISTS owned.od_loop; SET ROLE finance_app;
		CREATE VIEW owned.od_loop AS SELECT id::text AS a FROM crm.customers; RESET ROLE`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	writer := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
	reader := w.connect(t, "finance_app", "-c pgguard.purpose=financial_reporting")
	// A second writer renames a column of a table the view does not read,
	// so that the catalog has other names to read meanwhile.
	other := w.connect(t, "finance_app", "-c pgguard.purpose=invoicing")
	w.pg.MustExec(t, "postgres", `DROP TABLE IF EXISTS owned.od_noise; SET ROLE finance_app;
		CREATE TABLE owned.od_noise (x int); RESET ROLE`)
	var (
		lock    sync.RWMutex
		classed atomic.Bool
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		swaps   atomic.Int64
	)
	// The DDL goroutines end before the connections they use are closed,
	// also when a read fails the test.
	var halt sync.Once
	end := func() { halt.Do(func() { close(stop); wg.Wait() }) }
	defer end()
	wg.Add(2)
	go func() {
		defer wg.Done()
		defs := []string{"id::text", "iban"}
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			lock.Lock()
			_, err := writer.Exec(ctx, "CREATE OR REPLACE VIEW owned.od_loop AS SELECT "+defs[i%2]+" AS a FROM crm.customers")
			classed.Store(i%2 == 1)
			lock.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			swaps.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			alter := "RENAME COLUMN x TO y"
			if i%2 == 1 {
				alter = "RENAME COLUMN y TO x"
			}
			if _, err := other.Exec(ctx, "ALTER TABLE owned.od_noise "+alter); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) || reads < 200; reads++ {
		lock.RLock()
		want := classed.Load()
		_, err := reader.Exec(ctx, "SELECT a FROM owned.od_loop")
		lock.RUnlock()
		switch {
		case want && !isRefusal(err):
			t.Fatalf("read %d: the view reads IBANs, yet the read got %v", reads, err)
		case !want && err != nil:
			t.Fatalf("read %d: the view reads no IBANs, yet the read got %v", reads, err)
		}
		if reads > 100000 {
			break
		}
	}
	end()
	if swaps.Load() < 10 {
		t.Fatalf("only %d swaps ran during %d reads", swaps.Load(), reads)
	}
	t.Logf("%d reads, %d swaps", reads, swaps.Load())
}
