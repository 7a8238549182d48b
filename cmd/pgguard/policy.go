package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
)

// policy runs `pgguard policy lint|test|matrix`.
func policy(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	if len(args) == 0 {
		return exitError, usageError("policy needs lint, test, matrix, push or status")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return exitOK, nil
	case "lint":
		return lint(ctx, args[1:], stdout)
	case "test":
		return policyTest(ctx, args[1:], stdout)
	case "matrix":
		return policyMatrix(args[1:], stdout)
	case "push":
		return policyPush(ctx, args[1:], stdout)
	case "status":
		return policyStatus(ctx, args[1:], stdout)
	}
	return exitError, usageError(fmt.Sprintf("unknown policy command %q", args[0]))
}

const policyUsage = `usage:
  pgguard policy lint [flags]        find mistakes in the policy
  pgguard policy test [flags] FILE   check the expectations of a test file
  pgguard policy matrix [flags]      which department may use which data for which purpose
  pgguard policy push --to URL       lint (and test) the policy, then store it for the replicas
  pgguard policy status --store URL  the replicas that reported and the version each holds
Run "pgguard policy <command> -h" for the flags of a command.
`

func lintFlags(o *offline) *flag.FlagSet {
	fs := newFlagSet("policy lint", "pgguard policy lint [flags]")
	o.register(fs)
	return fs
}

func policyTestFlags(o *offline) *flag.FlagSet {
	fs := newFlagSet("policy test", "pgguard policy test [flags] FILE")
	o.register(fs)
	return fs
}

// lint prints each finding as FILE:LINE: severity: message; exit 1 on any.
func lint(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var o offline
	fs := lintFlags(&o)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := noArguments(fs, rest); err != nil {
		return exitError, err
	}
	var columns []string
	if o.upstream != "" || o.schema != "" {
		cats, err := o.catalogs()
		if err != nil {
			return exitError, err
		}
		snap, err := cats.Get(ctx, o.database)
		if err != nil {
			return exitError, fmt.Errorf("catalog: %w", err)
		}
		columns = userColumns(snap.Columns())
	}
	findings, err := authz.Lint(o.model, o.policy, columns)
	if err != nil {
		return exitError, err
	}
	for _, f := range findings {
		fmt.Fprintln(stdout, f.String())
	}
	skipped := authz.SkippedChecks(columns)
	switch {
	case len(findings) > 0:
		fmt.Fprintf(stdout, "%d finding(s)\n", len(findings))
	case len(skipped) > 0:
		fmt.Fprintln(stdout, "no findings")
	default:
		fmt.Fprintln(stdout, "policy is clean")
	}
	printSkipped(stdout, skipped)
	if len(findings) > 0 {
		return exitDenied, nil
	}
	return exitOK, nil
}

// printSkipped says which checks lint did not run, so that "no findings"
// is never read as "clean" when the catalog was not given.
func printSkipped(w io.Writer, skipped []authz.Check) {
	if len(skipped) == 0 {
		return
	}
	fmt.Fprintf(w, "skipped %d check(s) that need the catalog (give --schema FILE.sql or --upstream URL):\n", len(skipped))
	for _, c := range skipped {
		fmt.Fprintf(w, "  %s: %s\n", c.Code, c.About)
	}
}

// userColumns leaves out the system catalogs, which hold no personal data
// and would drown the discovery findings.
func userColumns(all []string) []string {
	var out []string
	for _, c := range all {
		if !strings.HasPrefix(c, "pg_catalog.") && !strings.HasPrefix(c, "information_schema.") {
			out = append(out, c)
		}
	}
	return out
}

// policyTest checks every expectation of a test file against the policy
// and the catalog, exactly as the proxy would decide.
func policyTest(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var o offline
	fs := policyTestFlags(&o)
	files, err := parseFlags(fs, args)
	if err != nil {
		return exitError, err
	}
	if len(files) != 1 {
		return exitError, usageError(fmt.Sprintf("policy test needs one test file, got %q", files))
	}
	failed, err := runPolicyTests(ctx, &o, files[0], stdout)
	if err != nil {
		return exitError, err
	}
	if failed > 0 {
		return exitDenied, nil
	}
	return exitOK, nil
}

// runPolicyTests checks every expectation of file against the policy and
// catalog o names, prints each failure and a summary, and returns how many
// failed.
func runPolicyTests(ctx context.Context, o *offline, file string, stdout io.Writer) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	exps, err := authz.ParseExpectations(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	g, err := o.guard()
	if err != nil {
		return 0, err
	}
	failed := 0
	for _, e := range exps {
		ex := g.Explain(ctx, e.User, o.database, e.Purpose, e.SQL)
		if msg := unmet(e, ex.Allowed, ex.Denied, ex.Message); msg != "" {
			failed++
			fmt.Fprintf(stdout, "FAIL %s:%d: %s\n", file, e.Line, msg)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(exps)-failed, failed)
	return failed, nil
}

// unmet says how an outcome misses an expectation, or "" when it holds.
func unmet(e authz.Expectation, allowed bool, denied []alert.Denial, message string) string {
	switch {
	case e.Allow && !allowed:
		return fmt.Sprintf("expected allow for %s (purpose %s), got: %s", e.User, orNone(e.Purpose), message)
	case !e.Allow && allowed:
		return fmt.Sprintf("expected deny for %s (purpose %s), but it was allowed", e.User, orNone(e.Purpose))
	case !e.Allow && e.Column != "":
		for _, d := range denied {
			if d.Column == e.Column {
				return ""
			}
		}
		return fmt.Sprintf("expected %s among the denied columns, got: %s", e.Column, message)
	}
	return ""
}
