package guard_test

// Attacks of family 8: errors that carry row values. A constraint
// violation's DETAIL shows the failing row, or a key of it or of another
// row; PostgreSQL leaves out the columns the user may not SELECT, and
// pgguard must leave out what the session may not read under the policy.
// Every user here may SELECT everything in the database, so PostgreSQL
// itself hides nothing.

import (
	"context"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	dto "github.com/prometheus/client_model/go"
)

// The secrets of the vault schema: none of them may reach support_app,
// which may write them but not read them.
const (
	secretBSN    = "111222333"          // crm.customers.bsn of customer 1
	secretIBAN   = "NL00BANK0123456789" // crm.customers.iban of customer 1
	secretPAN    = "4111-SECRET-PAN-0001"
	secretStay   = "[1000,2000)"
	secretAcct   = "NL99VAULT000111222"
	secretLedger = "ledger-secret-77"
	secretDup    = "dup-secret-42"
)

var vaultOnce sync.Once

// vaultSchema holds tables whose constraints fail with details that show
// classified values, and one row each.
const vaultSchema = `
CREATE SCHEMA vault;
CREATE TABLE vault.cards (
    id        int PRIMARY KEY,
    holder    text NOT NULL,
    pan       text,
    limit_eur int CHECK (limit_eur >= 0),
    UNIQUE (holder, pan)
);
INSERT INTO vault.cards VALUES (1, 'Anna', '` + secretPAN + `', 100), (2, 'Bram', '` + secretPAN + `', 50);
CREATE VIEW vault.small_cards AS SELECT id, holder, limit_eur FROM vault.cards WHERE limit_eur < 1000 WITH CHECK OPTION;
CREATE TABLE vault.bookings (id int PRIMARY KEY, guest text, stay int4range, EXCLUDE USING gist (stay WITH &&));
INSERT INTO vault.bookings VALUES (1, 'Anna', '` + secretStay + `');
CREATE TABLE vault.accounts (iban text PRIMARY KEY, owner text);
CREATE TABLE vault.transfers (id int PRIMARY KEY, iban text REFERENCES vault.accounts (iban), amount int);
INSERT INTO vault.accounts VALUES ('` + secretAcct + `', 'Anna');
INSERT INTO vault.transfers VALUES (1, '` + secretAcct + `', 10);
CREATE TABLE vault.ledger (id int NOT NULL, note text NOT NULL, secret text) PARTITION BY RANGE (id);
CREATE TABLE vault.ledger_low PARTITION OF vault.ledger FOR VALUES FROM (0) TO (100);
INSERT INTO vault.ledger VALUES (1, 'first', '` + secretLedger + `');
CREATE TABLE vault.tags (id int, tag text);
INSERT INTO vault.tags VALUES (1, '` + secretDup + `'), (2, '` + secretDup + `');
ALTER TABLE vault.tags OWNER TO support_app;
GRANT CREATE ON SCHEMA vault TO support_app;
GRANT USAGE ON SCHEMA vault TO support_app, hr_app;
GRANT ALL ON ALL TABLES IN SCHEMA vault TO support_app, hr_app;`

// vaultPolicy classifies the secrets: customer service may write them and
// never read them; HR, for personnel administration, may do both, and for
// an import only write them.
const vaultPolicy = `
g2, vault.cards.pan, vault_secret
g2, vault.bookings.stay, vault_secret
g2, vault.accounts.iban, vault_secret
g2, vault.transfers.iban, vault_secret
g2, vault.ledger.secret, vault_secret
g2, vault.tags.tag, vault_secret
g2, vault.own_secret.secret, vault_secret
p, customer_service, customer_support, vault_secret, write, allow
p, hr, personnel_admin, vault_secret, read, allow
p, hr, personnel_admin, vault_secret, write, allow
p, hr, vault_import, vault_secret, write, allow
`

// vaultWorld is a world in mode with the vault schema and policy.
func vaultWorld(t *testing.T, mode alert.Mode) *world {
	t.Helper()
	w := newWorld(t, mode)
	vaultOnce.Do(func() { w.pg.MustExec(t, "postgres", vaultSchema) })
	policy, err := os.ReadFile(w.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.policyFile, append(policy, vaultPolicy...), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := w.engine.Reload(); err != nil || !res.Swapped {
		t.Fatalf("reload: %v", err)
	}
	return w
}

// detailAttacks are statements support_app may run under customer_support
// whose failure PostgreSQL explains with values of columns it may not read.
var detailAttacks = []struct {
	name, sql, code string
	secrets         []string
}{
	{"not-null: the updated row, columns never named", "UPDATE crm.customers SET first_name = NULL WHERE id = 1", "23502",
		[]string{secretBSN, secretIBAN, "1980-02-03"}},
	{"check: the updated row", "UPDATE vault.cards SET limit_eur = -1 WHERE id = 1", "23514", []string{secretPAN}},
	{"unique: a key part never named", "UPDATE vault.cards SET holder = 'Anna' WHERE id = 2", "23505", []string{secretPAN}},
	{"exclusion: another row's key", "INSERT INTO vault.bookings VALUES (2, 'Bram', '[1500,1600)')", "23P01", []string{secretStay}},
	{"foreign key: the deleted row's key", "DELETE FROM vault.accounts WHERE owner = 'Anna'", "23503", []string{secretAcct}},
	{"partition: the row of a partition, classified on its parent", "UPDATE vault.ledger SET note = NULL WHERE id = 1", "23502", []string{secretLedger}},
	{"view check option: the base table's row", "UPDATE vault.small_cards SET limit_eur = 5000 WHERE id = 1", "44000", []string{secretPAN}},
	{"unique index: the duplicated key", "CREATE UNIQUE INDEX tags_tag ON vault.tags (tag)", "23505", []string{secretDup}},
}

// leaked returns the first secret found in any field of e.
func leaked(e *pgconn.PgError, secrets []string) string {
	v := reflect.ValueOf(*e)
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() != reflect.String {
			continue
		}
		for _, s := range secrets {
			if strings.Contains(f.String(), s) {
				return v.Type().Field(i).Name + " shows " + s
			}
		}
	}
	return ""
}

// direct runs sql as user straight on PostgreSQL and returns its error.
func (w *world) direct(t *testing.T, user, sql string) *pgconn.PgError {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.pg.URL(user, password, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	return pgErr(t, execSQL(conn, sql))
}

func TestSoundnessErrorDetailsShowNoUnreadableValues(t *testing.T) {
	w := vaultWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	conn := w.connect(t, "support_app", "-c pgguard.purpose=customer_support")
	for _, a := range detailAttacks {
		t.Run(a.name, func(t *testing.T) {
			// Unguarded, the detail shows the secret: the attack is real.
			want := w.direct(t, "support_app", a.sql)
			if want.Code != a.code || leaked(want, a.secrets) == "" {
				t.Fatalf("directly: %s %q detail %q: the attack shows nothing", want.Code, want.Message, want.Detail)
			}
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
				_, err := conn.Exec(ctx, a.sql, mode)
				got := pgErr(t, err)
				if leak := leaked(got, a.secrets); leak != "" {
					t.Fatalf("%v: %s", mode, leak)
				}
				if got.Code != want.Code || got.Message != want.Message || got.Detail == want.Detail ||
					got.TableName != want.TableName || got.ConstraintName != want.ConstraintName {
					t.Fatalf("%v: got %s %q detail %q, want %s %q with the detail withheld", mode, got.Code, got.Message, got.Detail, want.Code, want.Message)
				}
			}
		})
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "error detail withheld") {
		t.Fatalf("no log line says a detail was withheld:\n%s", logs)
	}
	if n := detailsCounted(t, w, alert.DetailRemoved); n != float64(2*len(detailAttacks)) {
		t.Fatalf("%v details counted as removed, want %d", n, 2*len(detailAttacks))
	}
	for _, a := range detailAttacks {
		for _, s := range a.secrets {
			if strings.Contains(logs, s) {
				t.Fatalf("the log shows %s", s)
			}
		}
	}
}

// A session that may read every column of the table sees PostgreSQL's
// error exactly.
func TestErrorDetailsStayForReadableTables(t *testing.T) {
	w := vaultWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	conn := w.connect(t, "hr_app", "-c pgguard.purpose=personnel_admin")
	for _, a := range detailAttacks {
		if strings.HasPrefix(a.sql, "UPDATE crm.") || a.code == "44000" || strings.HasPrefix(a.sql, "CREATE") {
			continue // hr may not read customers; a view's failure names no table; hr owns no table
		}
		t.Run(a.name, func(t *testing.T) {
			want := w.direct(t, "hr_app", a.sql)
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
				_, err := conn.Exec(ctx, a.sql, mode)
				if got := pgErr(t, err); !reflect.DeepEqual(*got, *want) {
					t.Fatalf("%v: through pgguard %+v, directly %+v", mode, *got, *want)
				}
			}
		})
	}
}

// The detail is judged under every purpose the session had while the
// failing statement may have run: a purpose declared after it in the same
// pipeline, which pgguard follows before the server's error comes back,
// does not widen it.
func TestSoundnessErrorDetailsUnderAPipelinedPurpose(t *testing.T) {
	w := vaultWorld(t, alert.ModeEnforce)
	r := w.raw(t, "hr_app", "-c pgguard.purpose=newsletter")
	const fail = "UPDATE vault.cards SET limit_eur = -1 WHERE id = 1"
	const widen = "SET pgguard.purpose = 'personnel_admin'"
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"two queries", []pgproto3.FrontendMessage{q(fail), q(widen)}},
		{"one query", []pgproto3.FrontendMessage{q(fail + "; " + widen)}},
		{"extended segment", append(append(extended("", fail), extended("", widen)...), &pgproto3.Sync{})},
	}
	for _, tc := range cases {
		for _, e := range r.errorsOf(tc.msgs...) {
			if e.Code != "23514" || strings.Contains(e.Detail, secretPAN) {
				t.Fatalf("%s: %s detail %q", tc.name, e.Code, e.Detail)
			}
		}
		r.errorsOf(q("SET pgguard.purpose = 'newsletter'"))
	}
}

// errorsOf sends msgs in one write and returns the errors of their answer.
func (r *raw) errorsOf(msgs ...pgproto3.FrontendMessage) []pgproto3.ErrorResponse {
	r.t.Helper()
	ready := r.write(msgs...)
	var out []pgproto3.ErrorResponse
	for ready > 0 {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			out = append(out, *m)
		case *pgproto3.ReadyForQuery:
			ready--
		}
	}
	return out
}

// Monitor mode never changes what the server sends: it logs that it would
// have withheld the detail.
func TestMonitorModeForwardsErrorDetails(t *testing.T) {
	w := vaultWorld(t, alert.ModeMonitor)
	conn := w.connect(t, "support_app", "-c pgguard.purpose=customer_support")
	a := detailAttacks[1]
	want := w.direct(t, "support_app", a.sql)
	if got := pgErr(t, execSQL(conn, a.sql)); !reflect.DeepEqual(*got, *want) {
		t.Fatalf("through pgguard %+v, directly %+v", *got, *want)
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "error detail withheld") || !strings.Contains(logs, `"monitor":true`) {
		t.Fatalf("no log line says the detail would have been withheld:\n%s", logs)
	}
	if strings.Contains(logs, secretPAN) {
		t.Fatal("the log shows the secret")
	}
	if n := detailsCounted(t, w, alert.DetailFlagged); n != 1 {
		t.Fatalf("%v details counted as flagged, want 1", n)
	}
}

// detailsCounted reads pgguard_error_details_withheld_total{action}.
func detailsCounted(t *testing.T, w *world, action string) float64 {
	t.Helper()
	var pb dto.Metric
	if err := w.metrics.ErrorDetails.WithLabelValues(action).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue()
}

// ownTableCase is a failing statement on a table the session made itself,
// after the statements that set it up, each sent as a message of its own.
type ownTableCase struct {
	name, user, purpose string
	setup               []string
	fail, code          string
	secrets             []string
}

// runOwn runs c's setup and failing statement on conn and returns the
// failure.
func runOwn(t *testing.T, conn *pgx.Conn, c ownTableCase) *pgconn.PgError {
	t.Helper()
	for _, sql := range c.setup {
		mustExec(t, conn, sql)
	}
	return pgErr(t, execSQL(conn, c.fail))
}

// A detail of a table the session made itself, a temporary one or one its
// open transaction created, is PostgreSQL's own when the session may read
// what the table can hold: pgguard decides on such tables, so it can judge
// their details too.
func TestErrorDetailsOfTheSessionsOwnTables(t *testing.T) {
	w := vaultWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	cases := []ownTableCase{
		{name: "temporary table, unique key", user: "hr_app", purpose: "personnel_admin",
			setup: []string{"CREATE TEMP TABLE own_t (id int PRIMARY KEY, note text)", "INSERT INTO own_t VALUES (1, 'a')"},
			fail:  "INSERT INTO own_t VALUES (1, 'b')", code: "23505"},
		{name: "temporary table holding a classified value the session may read", user: "hr_app", purpose: "personnel_admin",
			setup: []string{"CREATE TEMP TABLE own_s (pan text, note text NOT NULL)", "INSERT INTO own_s SELECT pan, 'n' FROM vault.cards WHERE id = 1"},
			fail:  "UPDATE own_s SET note = NULL", code: "23502"},
		{name: "table created in the open transaction", user: "support_app", purpose: "customer_support",
			setup: []string{"BEGIN", "CREATE TABLE vault.own_fresh (id int PRIMARY KEY, note text)", "INSERT INTO vault.own_fresh VALUES (1, 'a')"},
			fail:  "INSERT INTO vault.own_fresh VALUES (1, 'b')", code: "23505"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			direct, err := pgx.Connect(ctx, w.pg.URL(c.user, password, "postgres"))
			if err != nil {
				t.Fatal(err)
			}
			want := runOwn(t, direct, c)
			direct.Close(ctx)
			if want.Code != c.code || want.Detail == "" {
				t.Fatalf("directly: %s %q detail %q", want.Code, want.Message, want.Detail)
			}
			got := runOwn(t, w.connect(t, c.user, "-c pgguard.purpose="+c.purpose), c)
			// The temporary schema's name is the backend's own.
			if got.Code != want.Code || got.Message != want.Message || got.Detail != want.Detail ||
				got.TableName != want.TableName || got.ConstraintName != want.ConstraintName {
				t.Fatalf("through pgguard %s %q detail %q, directly %s %q detail %q", got.Code, got.Message, got.Detail,
					want.Code, want.Message, want.Detail)
			}
		})
	}
}

// A detail of the session's own table is withheld when the table may hold
// what the session may not read now: a classified value copied into a
// temporary table under an earlier purpose, or a classified column of a
// table its open transaction created.
func TestSoundnessErrorDetailsOfTheSessionsOwnTables(t *testing.T) {
	w := vaultWorld(t, alert.ModeEnforce)
	cases := []ownTableCase{
		{name: "temporary table holding a value read under an earlier purpose", user: "hr_app", purpose: "personnel_admin",
			setup: []string{"CREATE TEMP TABLE own_b (stay int4range, EXCLUDE USING gist (stay WITH &&))",
				"INSERT INTO own_b SELECT stay FROM vault.bookings WHERE id = 1", "SET pgguard.purpose = 'vault_import'"},
			fail: "INSERT INTO own_b VALUES ('[1500,1600)')", code: "23P01", secrets: []string{secretStay}},
		{name: "classified column of a table created in the open transaction", user: "support_app", purpose: "customer_support",
			setup: []string{"BEGIN", "CREATE TABLE vault.own_secret (id int, secret text, note text NOT NULL)",
				"INSERT INTO vault.own_secret VALUES (1, '" + secretDup + "', 'n')"},
			fail: "UPDATE vault.own_secret SET note = NULL WHERE id = 1", code: "23502", secrets: []string{secretDup}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runOwn(t, w.connect(t, c.user, "-c pgguard.purpose="+c.purpose), c)
			if got.Code != c.code {
				t.Fatalf("got %s %q, want the server's %s", got.Code, got.Message, c.code)
			}
			if leak := leaked(got, c.secrets); leak != "" || !strings.Contains(got.Detail, "pgguard: detail removed") {
				t.Fatalf("detail %q: %s", got.Detail, leak)
			}
		})
	}
}
