package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/proxy"
)

// psql runs the real psql binary against url with the given arguments and
// returns stdout, stderr and the exit code.
func psql(t *testing.T, url, password string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-v", "ON_ERROR_STOP=1", url}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=30", "PSQLRC=/dev/null", "PGAPPNAME=psql-test")
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run psql: %v", err) // psql missing is a failure, not a skip
	}
	return stdout.String(), stderr.String(), code
}

// TestPsql: the real psql client through pgguard: queries, \copy both ways,
// a denied statement, and TLS.
func TestPsql(t *testing.T) {
	f := newDenyFixture(t)
	url := f.p.AppURL()

	t.Run("query", func(t *testing.T) {
		out, errOut, code := psql(t, url, appPassword, "-At", "-c", "SELECT 6 * 7, current_user, current_setting('application_name')")
		if code != 0 || out != "42|"+appUser+"|psql-test\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("copy_both_ways", func(t *testing.T) {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.txt")
		var want strings.Builder
		for i := range 1000 {
			want.WriteString(strings.Repeat("1", 1+i%5) + "\n")
		}
		if err := os.WriteFile(in, []byte(want.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := psql(t, url, appPassword, "-c", `\copy `+f.table+` from '`+in+`'`)
		if code != 0 || strings.TrimSpace(out) != "COPY 1000" {
			t.Fatalf("\\copy from: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if n := f.rows(t); n != 1000 {
			t.Fatalf("%d rows after \\copy from", n)
		}
		outFile := filepath.Join(dir, "out.txt")
		out, errOut, code = psql(t, url, appPassword, "-c", `\copy (SELECT v FROM `+f.table+`) to '`+outFile+`'`)
		if code != 0 || strings.TrimSpace(out) != "COPY 1000" {
			t.Fatalf("\\copy to: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		got, err := os.ReadFile(outFile)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Fatalf("\\copy to wrote %d bytes, want %d", len(got), want.Len())
		}
		// COPY ... TO STDOUT, through psql's own output.
		out, _, code = psql(t, url, appPassword, "-c", "COPY (SELECT v FROM "+f.table+" LIMIT 3) TO STDOUT")
		if code != 0 || out != strings.Join(strings.SplitAfter(want.String(), "\n")[:3], "") {
			t.Fatalf("COPY TO STDOUT: exit %d, %q", code, out)
		}
		if _, err := f.super.Exec(testCtx(t), "TRUNCATE "+f.table); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("denied", func(t *testing.T) {
		out, errOut, code := psql(t, url, appPassword,
			"-c", "SELECT 'before'",
			"-c", "INSERT INTO "+f.table+" VALUES (1) -- "+denyMarker,
			"-c", "SELECT 'never reached'")
		if code == 0 || !strings.Contains(errOut, "ERROR:  "+deniedMessage) || !strings.Contains(errOut, "HINT:  declare a purpose") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		if !strings.Contains(out, "before") || strings.Contains(out, "never reached") {
			t.Fatalf("stdout %q", out)
		}
		if n := f.rows(t); n != 0 {
			t.Fatalf("the denied INSERT wrote %d rows", n)
		}
		// In a transaction, psql sees the block fail as PostgreSQL fails it.
		_, errOut, code = psql(t, url, appPassword, "-v", "ON_ERROR_STOP=0", "-c",
			"BEGIN; INSERT INTO "+f.table+" VALUES (1); SELECT '"+denyMarker+"'; SELECT 1; COMMIT")
		if !strings.Contains(errOut, deniedMessage) || code != 1 {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		if n := f.rows(t); n != 0 {
			t.Fatalf("the failed block wrote %d rows", n)
		}
	})

	t.Run("tls_require", func(t *testing.T) {
		serverTLS, _ := proxyTLS(t)
		tp := startProxy(t, proxy.Config{TLS: serverTLS})
		out, errOut, code := psql(t, tp.URL(appUser, "", "postgres", "sslmode=require"), appPassword, "-c", `\conninfo`, "-At", "-c", "SELECT 'over tls'")
		if code != 0 || !strings.Contains(out, "SSL connection") || !strings.Contains(out, "over tls") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// Without a certificate pgguard says 'N', which sslmode=require refuses.
		_, errOut, code = psql(t, f.p.URL(appUser, "", "postgres", "sslmode=require"), appPassword, "-c", "SELECT 1")
		if code == 0 || !strings.Contains(errOut, "server does not support SSL") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("tls_both_legs", func(t *testing.T) {
		pg := tlsCluster(t)
		serverTLS, proxyCA := proxyTLS(t)
		tp := startProxy(t, proxy.Config{Upstream: "postgres://" + pg.Addr() + "/?" + verifyFull(pg.CAFile), TLS: serverTLS})
		for _, user := range []struct{ name, password, extra string }{
			{"md5_user", "md5_pw", ""},
			{"scram_user", "scram_pw", "&channel_binding=disable"},
		} {
			out, errOut, code := psql(t, tp.URL(user.name, "", "postgres", verifyFull(proxyCA)+user.extra), user.password,
				"-At", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
			if code != 0 || out != "t\n" {
				t.Fatalf("%s: exit %d, stdout %q, stderr %q", user.name, code, out, errOut)
			}
		}
		// The limitation pinned by TestTLSBothLegsChannelBindingLimitation
		// applies to libpq's default (channel_binding=prefer) as well.
		_, errOut, code := psql(t, tp.URL("scram_user", "", "postgres", verifyFull(proxyCA)), "scram_pw", "-c", "SELECT 1")
		if code == 0 || !strings.Contains(errOut, "SCRAM channel binding negotiation error") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}
