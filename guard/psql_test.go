package guard_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/alert"
)

// psql runs the real psql through pgguard and returns its output.
func (w *world) psql(t *testing.T, user, options string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(w.addr, ":")
	cmd := exec.Command("psql", append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", user, "-d", "postgres"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGOPTIONS="+options, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPsqlMetaCommandsPassForEveryUser(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	for _, user := range []string{"marketing_app", "hr_app"} {
		for _, meta := range []string{`\d crm.customers`, `\dt crm.*`, `\l`, `\dn`, `\df`, `\du`, `\dv`} {
			out, err := w.psql(t, user, "", "-c", meta)
			if err != nil {
				t.Errorf("%s %s: %v\n%s", user, meta, err, out)
			}
		}
	}
	out, _ := w.psql(t, "marketing_app", "", "-c", `\d crm.customers`)
	if !strings.Contains(out, "email") || !strings.Contains(out, "bsn") {
		t.Errorf(`\d crm.customers does not list the columns:\n%s`, out)
	}
}

func TestPsqlSeesTheDenial(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	out, err := w.psql(t, "sales_app", "-c pgguard.purpose=order_fulfilment", "-c", "SELECT gross_monthly FROM hr.salaries")
	if err == nil || !strings.Contains(out, "pgguard:") || !strings.Contains(out, "hr.salaries.gross_monthly") {
		t.Fatalf("psql output: %v\n%s", err, out)
	}
	out, err = w.psql(t, "sales_app", "-c pgguard.purpose=order_fulfilment", "-c", "SELECT email FROM crm.customers WHERE id = 1")
	if err != nil || !strings.Contains(out, "anna@example.nl") {
		t.Fatalf("psql allowed query: %v\n%s", err, out)
	}
}
