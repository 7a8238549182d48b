package sqlscan

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pgguard/pgguard/catalog"
)

// The test catalog: a small company's database.
//
//	crm        customers, orders; views customer_contacts (over customers),
//	           contact_emails (a view over that view), distinct_cities
//	           (DISTINCT), masked_contacts (calls mask_email); functions
//	           mask_email and email (named like
//	           the column, for functional notation)
//	hr         employees, salaries, sick_leave; contractors INHERITS
//	           employees; views employee_directory, payroll; function
//	           salary_band
//	sales      invoices, partitioned by year (invoices_2024,
//	           invoices_2025, itself partitioned: invoices_2025_h1);
//	           materialized view revenue_by_city
//	marketing  customers (same name as crm.customers); a function lower
//	           that shadows pg_catalog.lower
//	public     customers (a third one), audit_log, exports (columns named
//	           like built-in functions), view customer_emails
//	           over crm.customers.email; function full_name(customers);
//	           operator ===
//	alice      the "$user" schema of user alice: customers (a fourth)
//
// Complete test snapshots add PostgreSQL 15's own pg_catalog and
// information_schema (relations with view definitions, functions), dumped
// from a real server into testdata/pg15_*.
func companyContents() catalog.Contents {
	t := func(schema, name string, cols string, parents ...catalog.QualifiedName) catalog.Relation {
		return catalog.Relation{Schema: schema, Name: name, Kind: catalog.Table,
			Columns: strings.Fields(cols), Parents: parents}
	}
	v := func(schema, name, cols, def string) catalog.Relation {
		return catalog.Relation{Schema: schema, Name: name, Kind: catalog.View,
			Columns: strings.Fields(cols), ViewDefinition: def,
			DefinitionSearchPath: []string{"pg_catalog"}}
	}
	q := func(schema, name string) catalog.QualifiedName {
		return catalog.QualifiedName{Schema: schema, Name: name}
	}
	invCols := "id customer_id issued_on amount vat_number"

	rels := []catalog.Relation{
		t("crm", "customers", "id first_name last_name email phone street postal_code city birth_date bsn iban"),
		t("crm", "orders", "id customer_id ordered_at total_amount status shipping_address"),
		t("hr", "employees", "id first_name last_name email phone bsn iban birth_date hired_on department"),
		t("hr", "salaries", "employee_id gross_monthly bank_account"),
		t("hr", "sick_leave", "employee_id start_date end_date diagnosis_note"),
		t("hr", "contractors", "id first_name last_name email phone bsn iban birth_date hired_on department agency day_rate",
			q("hr", "employees")),
		{Schema: "sales", Name: "invoices", Kind: catalog.PartitionedTable, Columns: strings.Fields(invCols)},
		t("sales", "invoices_2024", invCols, q("sales", "invoices")),
		{Schema: "sales", Name: "invoices_2025", Kind: catalog.PartitionedTable, Columns: strings.Fields(invCols),
			Parents: []catalog.QualifiedName{q("sales", "invoices")}},
		t("sales", "invoices_2025_h1", invCols, q("sales", "invoices_2025")),
		t("marketing", "customers", "id email segment"),
		t("public", "customers", "id name"),
		t("public", "audit_log", "id actor action logged_at"),
		t("public", "exports", "id to_json length payload"),
		t("alice", "customers", "id note"),
		v("crm", "customer_contacts", "id full_name email phone",
			`SELECT customers.id, (customers.first_name || ' '::text) || customers.last_name AS full_name,
			        customers.email, customers.phone
			   FROM crm.customers;`),
		v("crm", "contact_emails", "id email",
			`SELECT customer_contacts.id, customer_contacts.email
			   FROM crm.customer_contacts
			  WHERE customer_contacts.email IS NOT NULL;`),
		v("crm", "distinct_cities", "city postal_code",
			`SELECT DISTINCT customers.city, customers.postal_code FROM crm.customers;`),
		v("hr", "employee_directory", "id first_name last_name department",
			`SELECT e.id, e.first_name, e.last_name, e.department
			   FROM hr.employees e
			  WHERE e.hired_on <= CURRENT_DATE;`),
		v("hr", "payroll", "id last_name gross_monthly",
			`SELECT e.id, e.last_name, s.gross_monthly
			   FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id;`),
		v("public", "customer_emails", "email", `SELECT customers.email FROM crm.customers;`),
		v("crm", "masked_contacts", "masked", `SELECT crm.mask_email(customers.email) AS masked FROM crm.customers;`),
		{Schema: "sales", Name: "revenue_by_city", Kind: catalog.MaterializedView,
			Columns: []string{"city", "revenue"}, DefinitionSearchPath: []string{"pg_catalog"},
			ViewDefinition: `SELECT c.city, sum(o.total_amount) AS revenue
			   FROM crm.orders o JOIN crm.customers c ON c.id = o.customer_id
			  GROUP BY c.city;`},
	}
	return catalog.Contents{
		Database:  "shop",
		Schemas:   []string{"crm", "hr", "sales", "marketing", "public", "alice"},
		Relations: rels,
		Functions: []catalog.Function{
			{Schema: "crm", Name: "mask_email", Language: "sql"},
			{Schema: "crm", Name: "email", Language: "sql"},
			{Schema: "hr", Name: "salary_band", Language: "plpgsql"},
			{Schema: "marketing", Name: "lower", Language: "sql"},
			{Schema: "public", Name: "full_name", Language: "sql"},
		},
		Operators:   []catalog.Operator{{Schema: "public", Name: "==="}},
		SearchPaths: map[string][]string{"": {"$user", "public"}},
	}
}

var (
	fixtureOnce     sync.Once
	completeCatalog *catalog.Snapshot
	ddlCatalog      *catalog.Snapshot
	fixtureErr      error
)

// fixtures returns the complete snapshot (company plus PostgreSQL's own
// catalogs) and the incomplete one (company only, like a DDL file).
func fixtures(tb testing.TB) (complete, ddl *catalog.Snapshot) {
	tb.Helper()
	fixtureOnce.Do(func() {
		c := companyContents()
		ddlCatalog = catalog.New(c)
		rels, err := builtinRelations("testdata/pg15_relations.json")
		if err != nil {
			fixtureErr = err
			return
		}
		fns, err := builtinFunctions("testdata/pg15_functions.txt")
		if err != nil {
			fixtureErr = err
			return
		}
		c.Complete = true
		c.Relations = append(c.Relations, rels...)
		c.Functions = append(c.Functions, fns...)
		c.Schemas = append(c.Schemas, pgCatalog, infoSchema)
		completeCatalog = catalog.New(c)
	})
	if fixtureErr != nil {
		tb.Fatal(fixtureErr)
	}
	return completeCatalog, ddlCatalog
}

func builtinRelations(path string) ([]catalog.Relation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Schema, Name, Kind, View string
		Columns                  []string
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make([]catalog.Relation, len(raw))
	for i, r := range raw {
		out[i] = catalog.Relation{Schema: r.Schema, Name: r.Name, Kind: catalog.RelKind(r.Kind[0]),
			Columns: r.Columns, ViewDefinition: r.View}
		if r.View != "" {
			out[i].DefinitionSearchPath = []string{"pg_catalog"}
		}
	}
	return out, nil
}

func builtinFunctions(path string) ([]catalog.Function, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []catalog.Function
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		schema, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), ".")
		if ok {
			out = append(out, catalog.Function{Schema: schema, Name: name, Language: "internal", BuiltIn: true})
		}
	}
	return out, sc.Err()
}
