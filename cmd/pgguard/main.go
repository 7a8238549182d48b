// Command pgguard is an access-separation proxy for PostgreSQL: it refuses
// statements that would touch another department's personal data, or
// personal data outside a declared purpose, and alerts the security team.
//
// main only wires flags and environment to the packages and waits for
// signals; see the package documentation of proxy, guard, sqlscan, authz,
// catalog and alert for how the work is done.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes shared by the subcommands (contract §1).
const (
	exitOK     = 0
	exitDenied = 1 // check: denied; lint: findings; policy test: failures
	exitError  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	var err error
	code := exitOK
	switch cmd {
	case "serve":
		err = serve(ctx, rest, stderr)
	case "check":
		code, err = check(ctx, rest, stdout)
	case "policy":
		code, err = policy(ctx, rest, stdout)
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "grants":
		code, err = runGrants(ctx, rest, stdout)
	case "version":
		fmt.Fprintln(stdout, "pgguard", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError(fmt.Sprintf("unknown command %q", cmd))
	}
	if err != nil {
		fmt.Fprintln(stderr, "pgguard:", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprint(stderr, usage)
		}
		return exitError
	}
	return code
}

type usageError string

func (e usageError) Error() string { return string(e) }

const usage = `usage:
  pgguard serve [flags]           run the proxy (also: pgguard [flags])
  pgguard check [flags] "SQL"     decide on one statement and say why
  pgguard policy lint [flags]     find mistakes in the policy
  pgguard policy test [flags] F   check the expectations of test file F
  pgguard policy matrix [flags]   which department may use which data for which purpose
  pgguard grants [--apply] [flags] PostgreSQL privileges compiled from the policy
  pgguard grants check [flags]    differences between the live privileges and the policy's
  pgguard demo [--interactive]    the whole system with a throwaway PostgreSQL
  pgguard version
Every flag can also be set as PGGUARD_<FLAG> (upper case, '-' as '_'); the flag wins.
Run "pgguard <command> -h" for the flags of a command.
`
