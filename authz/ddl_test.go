package authz

import (
	"testing"
)

// TestDDLAndTrustedExtensions: attaching code needs act ddl on object ddl,
// trusting an extension needs act execute on extension:name, directly or
// through a category; neither follows Options.Unclassified, and deny wins.
func TestDDLAndTrustedExtensions(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.csv", `g, app, dept
g, dba_app, dba
g, other_app, other
g2, crm.customers.email, contact
g2, extension:hstore, trusted_extensions
g2, extension:postgis, trusted_extensions
g3, newsletter, marketing
p, dept, marketing, contact, read, allow
p, dept, *, trusted_extensions, execute, allow
p, dept, *, extension:postgis, execute, deny
p, other, *, extension:citext, execute, allow
p, dba, marketing, ddl, ddl, allow
`)
	for _, unclassified := range []string{UnclassifiedAllow, UnclassifiedDeny} {
		p, err := Load(shippedModel, policy, Options{Unclassified: unclassified})
		if err != nil {
			t.Fatal(err)
		}
		ddl := []struct {
			who, purpose string
			want         bool
		}{
			{"dba_app", "marketing", true},
			{"dba_app", "newsletter", true}, // below marketing in g3
			{"dba_app", "", false},
			{"app", "marketing", false},
			{"nobody", "marketing", false},
		}
		for _, c := range ddl {
			if got := p.DDLAllowed(c.who, c.purpose); got != c.want {
				t.Errorf("%v: DDLAllowed(%s, %q) = %v, want %v", unclassified, c.who, c.purpose, got, c.want)
			}
		}
		ext := []struct {
			who, name string
			want      bool
		}{
			{"app", "hstore", true},
			{"app", "postgis", false}, // deny wins over the category's allow
			{"app", "citext", false},
			{"other_app", "citext", true},
			{"other_app", "hstore", false},
			{"dba_app", "hstore", false},
		}
		for _, c := range ext {
			if got := p.ExtensionTrusted(c.who, "", c.name); got != c.want {
				t.Errorf("%v: ExtensionTrusted(%s, %s) = %v, want %v", unclassified, c.who, c.name, got, c.want)
			}
		}
		for _, who := range []string{"app", "dba_app", "other_app", "nobody"} {
			for _, purpose := range []string{"", "marketing", "newsletter", "other"} {
				for _, obj := range []string{ObjectDDL, "extension:hstore", "extension:postgis", "extension:citext"} {
					for _, act := range []Act{ActDDL, ActExecute, ActRead} {
						compareWithCasbin(t, p, who, purpose, obj, act)
					}
				}
			}
		}
		d := p.Decide("app", "marketing", []Access{{Column: ObjectDDL, Act: ActDDL}})
		if d.Allowed || len(d.Denied) != 1 || d.Denied[0].Reason == "" {
			t.Errorf("%v: Decide on ddl for a department without a rule = %+v", unclassified, d)
		}
	}
}
