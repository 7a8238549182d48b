package guard_test

// Soundness family 7: code a session attaches to the database runs inside
// later statements, where the analysis cannot see it. Every role can create
// such code in its own temporary schema, so each attack below needs nothing
// but the TEMP privilege.

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
)

// attachAttacks each attach code in pg_temp (or on a temporary table) that
// a later statement could run; the names are unique so the server's
// catalog shows whether anything was created.
var attachAttacks = []struct{ name, sql, probe string }{
	{"temporary function shadowing a column by functional notation",
		"CREATE FUNCTION pg_temp.pgg_attack_fn(crm.customers) RETURNS text LANGUAGE sql AS 'SELECT $1.iban'",
		"SELECT count(*) FROM pg_proc WHERE proname = 'pgg_attack_fn'"},
	{"temporary procedure",
		"CREATE PROCEDURE pg_temp.pgg_attack_proc() LANGUAGE sql AS 'SELECT 1'",
		"SELECT count(*) FROM pg_proc WHERE proname = 'pgg_attack_proc'"},
	{"composite type",
		"CREATE TYPE pg_temp.pgg_attack_type AS (a int)",
		"SELECT count(*) FROM pg_type WHERE typname = 'pgg_attack_type'"},
	{"enum type", "CREATE TYPE pg_temp.pgg_attack_enum AS ENUM ('a')",
		"SELECT count(*) FROM pg_type WHERE typname = 'pgg_attack_enum'"},
	{"domain with a check that runs on every cast",
		"CREATE DOMAIN pg_temp.pgg_attack_dom AS text CHECK (VALUE <> '')",
		"SELECT count(*) FROM pg_type WHERE typname = 'pgg_attack_dom'"},
	{"operator over a built-in function",
		"CREATE OPERATOR pg_temp.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)",
		"SELECT count(*) FROM pg_operator WHERE oprname = '==='"},
	{"aggregate",
		"CREATE AGGREGATE pg_temp.pgg_attack_agg(int) (SFUNC = int4pl, STYPE = int)",
		"SELECT count(*) FROM pg_proc WHERE proname = 'pgg_attack_agg'"},
	{"event trigger", "CREATE EVENT TRIGGER pgg_attack_evt ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()",
		"SELECT count(*) FROM pg_event_trigger WHERE evtname = 'pgg_attack_evt'"},
}

func TestSoundnessAttachedCodeIsRefused(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	for _, proto := range []string{"simple", "extended"} {
		for _, c := range attachAttacks {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
				var out outcome
				if proto == "simple" {
					out = r.send(q(c.sql))
				} else {
					out = r.send(append(extended("", c.sql), &pgproto3.Sync{})...)
				}
				if out.lastErr != "42501" {
					t.Fatalf("want 42501 from pgguard, got errors %v", out.errors)
				}
				if n := w.count(t, c.probe); n != 0 {
					t.Fatalf("the statement reached the server: %d objects", n)
				}
			})
		}
	}
}

// TestSoundnessCodeOnTemporaryTables: triggers, rules and policies on a
// table of the session's own attach code to every write or read of it.
func TestSoundnessCodeOnTemporaryTables(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	conn := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	mustExec(t, conn, "CREATE TEMP TABLE pgg_stage (id int, note text)")
	for _, sql := range []string{
		"CREATE RULE pgg_attack_rule AS ON INSERT TO pgg_stage DO ALSO SELECT 1",
		"CREATE TRIGGER pgg_attack_trg BEFORE INSERT ON pgg_stage FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
		"CREATE POLICY pgg_attack_pol ON pgg_stage USING (true)",
		"ALTER TABLE pgg_stage ENABLE TRIGGER ALL",
		"ALTER FUNCTION public.unaccent(text) SECURITY DEFINER",
		"ALTER FUNCTION public.unaccent(text) RENAME TO lower",
		"CREATE EXTENSION IF NOT EXISTS pgcrypto",
	} {
		err := execSQL(conn, sql)
		pe := pgErr(t, err)
		if pe.Code != "42501" || !strings.Contains(pe.Message, "attaches code") {
			t.Fatalf("%s: want pgguard's refusal, got %s %q", sql, pe.Code, pe.Message)
		}
	}
	if n := w.count(t, "SELECT count(*) FROM pg_proc WHERE proname = 'unaccent' AND NOT prosecdef"); n != 1 {
		t.Fatalf("public.unaccent was changed")
	}
	// Plain temporary objects stay allowed.
	for _, sql := range []string{
		"CREATE TEMP TABLE pgg_copy (LIKE pgg_stage)",
		"CREATE INDEX ON pgg_stage (id)",
		"CREATE TEMP TABLE pgg_t2 (id int); CREATE TEMP VIEW pgg_view AS SELECT id FROM pgg_t2",
		"CREATE TEMP SEQUENCE pgg_seq",
		"DROP TABLE pgg_copy",
	} {
		mustExec(t, conn, sql)
	}
}

// TestAttachingCodeWithADDLRule: a department the policy allows act ddl
// may attach code, and only under the purposes the rule names.
func TestAttachingCodeWithADDLRule(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	w.addRules(t, "p, hr, personnel_admin, ddl, ddl, allow")
	conn := w.connect(t, "hr_app", "-c pgguard.purpose=payroll")
	mustExec(t, conn, "CREATE FUNCTION pg_temp.pgg_allowed_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
	mustExec(t, conn, "CREATE TYPE pg_temp.pgg_allowed_type AS (a int)")
	mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
	pe := pgErr(t, execSQL(conn, "CREATE DOMAIN pg_temp.pgg_allowed_dom AS int"))
	if pe.Code != "42501" || !strings.Contains(pe.Message, `for purpose "newsletter"`) {
		t.Fatalf("want a refusal under another purpose, got %s %q", pe.Code, pe.Message)
	}
	// A prepared CREATE is decided again under the purpose of its Bind.
	other := w.connect(t, "hr_app", "-c pgguard.purpose=payroll")
	ctx := context.Background()
	if _, err := other.Prepare(ctx, "mk", "CREATE DOMAIN pg_temp.pgg_prepared_dom AS int"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, other, "SET pgguard.purpose = 'newsletter'")
	if _, err := other.Exec(ctx, "mk"); err == nil {
		t.Fatal("a prepared CREATE DOMAIN ran under a purpose without ddl")
	}
	sales := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	expectDenied(t, execSQL(sales, "CREATE FUNCTION pg_temp.pgg_sales_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'"), "")
}
