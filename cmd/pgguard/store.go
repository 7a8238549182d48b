package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/policystore"
)

// storeTimeout bounds a push or a status query, connection included.
const storeTimeout = 30 * time.Second

// pushConfig is what `pgguard policy push` is configured with.
type pushConfig struct {
	offline
	to, tests string
}

func pushFlags(c *pushConfig) *flag.FlagSet {
	fs := newFlagSet("policy push", "pgguard policy push --to URL [--model F] [--policy F] [--tests FILE --schema FILE.sql]")
	c.register(fs)
	fs.StringVar(&c.to, "to", "", "the policy store: a PostgreSQL connection URL whose role may create the schema pgguard (first push) and write its tables (required)")
	fs.StringVar(&c.tests, "tests", "", "policy test file whose expectations must all hold before the push (needs --schema or --upstream)")
	return fs
}

// policyPush lints the files (errors refuse the push), runs the tests if
// given (a failure refuses it), and stores the texts as the next version.
// Exit 0 pushed or already the newest, 1 refused by lint or tests, 2 error.
func policyPush(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var c pushConfig
	fs := pushFlags(&c)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := noArguments(fs, rest); err != nil {
		return exitError, err
	}
	if c.to == "" {
		return exitError, usageError("policy push needs --to URL")
	}
	modelData, err := os.ReadFile(c.model)
	if err != nil {
		return exitError, fmt.Errorf("read model: %w", err)
	}
	policyData, err := os.ReadFile(c.policy)
	if err != nil {
		return exitError, fmt.Errorf("read policy: %w", err)
	}
	findings, err := authz.Lint(c.model, c.policy, nil)
	if err != nil {
		return exitError, err
	}
	errors := 0
	for _, f := range findings {
		fmt.Fprintln(stdout, f.String())
		if f.Severity == authz.SeverityError {
			errors++
		}
	}
	if errors > 0 {
		fmt.Fprintf(stdout, "not pushed: lint found %d error(s)\n", errors)
		return exitDenied, nil
	}
	if c.tests != "" {
		failed, err := runPolicyTests(ctx, &c.offline, c.tests, stdout)
		if err != nil {
			return exitError, err
		}
		if failed > 0 {
			fmt.Fprintf(stdout, "not pushed: %d policy test(s) failed\n", failed)
			return exitDenied, nil
		}
	}
	// What was linted must be what is pushed: a file changed in between
	// would push something no check saw.
	if m2, p2, err := readBoth(c.model, c.policy); err != nil {
		return exitError, err
	} else if string(m2) != string(modelData) || string(p2) != string(policyData) {
		return exitError, fmt.Errorf("the policy files changed while they were checked; push again")
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.to)
	if err != nil {
		return exitError, fmt.Errorf("policy store %s: %w", redactURL(c.to), err)
	}
	defer conn.Close(context.Background())
	rec, created, err := policystore.Push(ctx, conn, filepath.Base(c.model), string(modelData), filepath.Base(c.policy), string(policyData))
	if err != nil {
		return exitError, err
	}
	if created {
		fmt.Fprintf(stdout, "pushed version %d, checksum %s\n", rec.Version, rec.Checksum)
	} else {
		fmt.Fprintf(stdout, "version %d, checksum %s, already holds these files: nothing pushed\n", rec.Version, rec.Checksum)
	}
	return exitOK, nil
}

func readBoth(model, policy string) ([]byte, []byte, error) {
	m, err := os.ReadFile(model)
	if err != nil {
		return nil, nil, fmt.Errorf("read model: %w", err)
	}
	p, err := os.ReadFile(policy)
	if err != nil {
		return nil, nil, fmt.Errorf("read policy: %w", err)
	}
	return m, p, nil
}

// statusConfig is what `pgguard policy status` is configured with.
type statusConfig struct {
	store  string
	asJSON bool
}

func statusFlags(c *statusConfig) *flag.FlagSet {
	fs := newFlagSet("policy status", "pgguard policy status --store URL [--json]")
	fs.StringVar(&c.store, "store", "", "the policy store's PostgreSQL connection URL (required)")
	fs.BoolVar(&c.asJSON, "json", false, "print the status as JSON")
	return fs
}

// statusReplica is one line of `policy status`.
type statusReplica struct {
	ID        string    `json:"replica_id"`
	Version   int64     `json:"version"`
	Checksum  string    `json:"checksum"`
	State     string    `json:"state"` // live or expired
	Current   bool      `json:"current"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
}

// policyStatus lists the replicas that reported and the version each
// holds. Exit 0 when at least one replica is live and every live one holds
// the newest version; 1 when none is live or a live one holds another
// version; 2 on errors, an empty store included.
func policyStatus(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var c statusConfig
	fs := statusFlags(&c)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := noArguments(fs, rest); err != nil {
		return exitError, err
	}
	if c.store == "" {
		return exitError, usageError("policy status needs --store URL")
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.store)
	if err != nil {
		return exitError, fmt.Errorf("policy store %s: %w", redactURL(c.store), err)
	}
	defer conn.Close(context.Background())
	reps, newest, err := policystore.Replicas(ctx, conn)
	if err != nil {
		return exitError, err
	}
	lines := make([]statusReplica, 0, len(reps))
	live, behind := 0, 0
	for _, r := range reps {
		state := "expired"
		if r.Live {
			state = "live"
			live++
			if !r.Current {
				behind++
			}
		}
		lines = append(lines, statusReplica{ID: r.ID, Version: r.Version, Checksum: r.Checksum, State: state,
			Current: r.Current, StartedAt: r.StartedAt, LastSeen: r.LastSeen})
	}
	if c.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Version  int64           `json:"version"`
			Checksum string          `json:"checksum"`
			PushedAt time.Time       `json:"pushed_at"`
			PushedBy string          `json:"pushed_by"`
			Replicas []statusReplica `json:"replicas"`
		}{newest.Version, newest.Checksum, newest.PushedAt, newest.PushedBy, lines}); err != nil {
			return exitError, err
		}
	} else {
		fmt.Fprintf(stdout, "newest version %d, checksum %s, pushed %s by %s\n", newest.Version, newest.Checksum,
			newest.PushedAt.UTC().Format(time.RFC3339), newest.PushedBy)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REPLICA\tSTATE\tVERSION\tCHECKSUM\tCURRENT\tLAST SEEN")
		for _, l := range lines {
			current := "no"
			if l.Current {
				current = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", l.ID, l.State, l.Version, short(l.Checksum), current, l.LastSeen.UTC().Format(time.RFC3339))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d live replica(s), %d behind the newest version, %d expired\n", live, behind, len(lines)-live)
	}
	if live == 0 || behind > 0 {
		return exitDenied, nil
	}
	return exitOK, nil
}

// short is a checksum's first 12 digits, the policy version alerts name.
func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
