package guard_test

// Soundness family 9: extensions installed in public. Their operators (an
// hstore =, a citext =, pg_trgm's %) are candidates wherever the path
// reaches public; PostgreSQL picks them only for operands of their types.
// Ordinary statements must run; the extensions' own operators run only
// where the policy trusts the extension.

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
)

const extensionDB = "pgguard_ext"

// extensionWorld is the demo schema in a database of its own, with hstore,
// citext and pg_trgm installed in public and a table using their types.
func extensionWorld(t *testing.T) *world {
	w := newWorld(t, alert.ModeEnforce)
	w.pg.MustExec(t, "postgres", "DROP DATABASE IF EXISTS "+extensionDB+" WITH (FORCE)")
	w.pg.MustExec(t, "postgres", "CREATE DATABASE "+extensionDB)
	t.Cleanup(func() { w.pg.MustExec(t, "postgres", "DROP DATABASE IF EXISTS "+extensionDB+" WITH (FORCE)") })
	schema, err := os.ReadFile("../demo/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	w.pg.MustExec(t, extensionDB, string(schema))
	w.pg.MustExec(t, extensionDB, `CREATE EXTENSION hstore SCHEMA public; CREATE EXTENSION citext SCHEMA public;
		CREATE EXTENSION pg_trgm SCHEMA public;
		CREATE TABLE public.tags (id int PRIMARY KEY, attrs hstore, label citext, note text);
		INSERT INTO public.tags VALUES (1, 'colour=>red', 'Red', 'first');
		INSERT INTO crm.customers (id, first_name, last_name, email, iban)
		  VALUES (1, 'Anna', 'de Vries', 'anna@example.nl', 'NL00BANK0123456789')`)
	for _, u := range departmentUsers {
		w.pg.MustExec(t, extensionDB, "GRANT USAGE ON SCHEMA crm, hr TO "+u+
			"; GRANT ALL ON ALL TABLES IN SCHEMA crm, hr, public TO "+u)
	}
	return w
}

func (w *world) connectDB(t *testing.T, user, db, options string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig("postgres://" + user + ":" + password + "@" + w.addr + "/" + db + "?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["options"] = options
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestExtensionsInPublicLeaveOrdinaryStatementsAlone(t *testing.T) {
	w := extensionWorld(t)
	conn := w.connectDB(t, "sales_app", extensionDB, "-c pgguard.purpose=order_fulfilment")
	ctx := context.Background()
	for _, sql := range []string{
		"SELECT email FROM crm.customers WHERE id = 1",
		"SELECT email FROM crm.customers WHERE email = 'anna@example.nl'",
		"SELECT email FROM crm.customers WHERE email LIKE 'anna%' AND id IN (1, 2)",
		"SELECT email FROM crm.customers WHERE id BETWEEN 1 AND 10 ORDER BY id",
		"SELECT id FROM crm.orders WHERE total_amount > 10 AND status <> 'new'",
		"SELECT note FROM public.tags WHERE note = 'first'",
		"SELECT id FROM public.tags WHERE label::text = 'Red'",
		"SELECT replace(email, 'a', 'b'), upper(first_name), strpos(email, '@') FROM crm.customers WHERE id = 1",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	// Parameters: pgx lets the server infer their types.
	var email string
	if err := conn.QueryRow(ctx, "SELECT email FROM crm.customers WHERE id = $1", 1).Scan(&email); err != nil {
		t.Errorf("parameter: %v", err)
	}
	// The extensions' own operators run code pgguard cannot see into.
	for _, sql := range []string{
		"SELECT id FROM public.tags WHERE attrs -> 'colour' = 'red'",
		"SELECT id FROM public.tags WHERE label = 'red'",
		"SELECT id FROM public.tags WHERE note % 'frist'",
		"SELECT id FROM public.tags WHERE attrs = 'colour=>red'",
		"SELECT replace(label, 'R', 'r') FROM public.tags",
	} {
		pe := pgErr(t, execSQL(conn, sql))
		if pe.Code != "42501" {
			t.Errorf("%s: want a refusal, got %s %s", sql, pe.Code, pe.Message)
		}
	}
}

func TestTrustedExtensions(t *testing.T) {
	w := extensionWorld(t)
	w.addRules(t, "g2, extension:hstore, trusted_extensions", "g2, extension:citext, trusted_extensions",
		"p, sales, order_fulfilment, trusted_extensions, execute, allow")
	conn := w.connectDB(t, "sales_app", extensionDB, "-c pgguard.purpose=order_fulfilment")
	for _, sql := range []string{
		"SELECT id FROM public.tags WHERE attrs -> 'colour' = 'red'",
		"SELECT id FROM public.tags WHERE label = 'red'",
		"SELECT akeys(attrs) FROM public.tags",
	} {
		mustExec(t, conn, sql)
	}
	// pg_trgm is not trusted, and trust follows the purpose.
	expectDenied(t, execSQL(conn, "SELECT id FROM public.tags WHERE note % 'frist'"), "")
	mustExec(t, conn, "SET pgguard.purpose = 'newsletter'")
	expectDenied(t, execSQL(conn, "SELECT id FROM public.tags WHERE label = 'red'"), "")
	// A trusted extension's operator still reads what its operands read.
	mustExec(t, conn, "SET pgguard.purpose = 'order_fulfilment'")
	expectDenied(t, execSQL(conn, "SELECT id FROM crm.customers WHERE iban::citext = 'x'"), "iban")
}
