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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version may be set at build time with -ldflags "-X main.version=...";
// when it is not, the version comes from the module's build information.
var version string

// Exit codes shared by the subcommands (docs/reference.md, "Exit codes").
const (
	exitOK     = 0
	exitDenied = 1 // check: denied; lint: findings; policy test: failures; push: refused; status: replicas behind
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
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			cmd, rest = "help", args[1:]
		case "-version", "--version":
			cmd, rest = "version", args[1:]
		default:
			if args[0] != "" && args[0][0] != '-' {
				cmd, rest = args[0], args[1:]
			}
		}
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
		fmt.Fprintf(stdout, "pgguard %s (%s)\n", versionOf(version, debug.ReadBuildInfo), runtime.Version())
	case "help":
		if len(rest) > 0 { // pgguard help COMMAND [SUBCOMMAND]
			return run(ctx, append(rest, "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		err = usageError(fmt.Sprintf("unknown command %q", cmd))
	}
	var help helpRequested
	if errors.As(err, &help) {
		help.printHelp(stdout)
		return exitOK
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

// commandFlagSets returns the flag set of every command that has flags,
// by its name after "pgguard".
func commandFlagSets() map[string]*flag.FlagSet {
	return map[string]*flag.FlagSet{
		"serve":         serveFlags(&serveConfig{}),
		"check":         checkFlags(&checkConfig{}),
		"policy lint":   lintFlags(&offline{}),
		"policy test":   policyTestFlags(&offline{}),
		"demo":          demoFlags(&demoConfig{}),
		"policy matrix": matrixFlags(&matrixConfig{}),
		"grants":        grantsFlags(&grantsConfig{}),
		"grants check":  grantsCheckFlags(&grantsConfig{}),
		"policy push":   pushFlags(&pushConfig{}),
		"policy status": statusFlags(&statusConfig{}),
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// versionOf is the version a build reports: the one set with -ldflags when
// there is one, else the main module's version from the build information
// (a tag, or a pseudo-version of the commit), else the commit it was built
// from, else "(devel)".
func versionOf(ldflags string, buildInfo func() (*debug.BuildInfo, bool)) string {
	if ldflags != "" {
		return ldflags
	}
	info, ok := buildInfo()
	if !ok {
		return "(devel)"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return "(devel)"
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified == "true" {
		revision += "-dirty"
	}
	return "(devel) " + revision
}

const usage = `usage:
  pgguard serve [flags]           run the proxy (also: pgguard [flags])
  pgguard check [flags] "SQL"     decide on one statement and say why
  pgguard policy lint [flags]     find mistakes in the policy
  pgguard policy test [flags] F   check the expectations of test file F
  pgguard policy matrix [flags]   which department may use which data for which purpose
  pgguard policy push --to URL    lint and test the policy, then store it for the replicas
  pgguard policy status --store URL  the replicas that reported and the version each holds
  pgguard grants [--apply] [flags] PostgreSQL privileges compiled from the policy
  pgguard grants check [flags]    differences between the live privileges and the policy's
  pgguard demo [flags]            the whole system with a throwaway PostgreSQL
  pgguard version                 also: pgguard --version
Every flag can also be set as PGGUARD_<FLAG> (upper case, '-' as '_'); the
flag wins, and --upstream, --database-url or --schema on the command line
keeps the environment's values of the other two out.
Flags may come before or after the arguments; "--" ends the flags.
Run "pgguard <command> -h" for the flags of a command.
`
