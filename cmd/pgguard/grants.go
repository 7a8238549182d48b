package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/grants"
)

// runGrants prints, or with --apply runs, the SQL that makes PostgreSQL
// enforce the policy's department ceilings (package grants).
func runGrants(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	if len(args) > 0 && args[0] == "check" {
		return grantsCheck(ctx, args[1:], stdout)
	}
	var c grantsConfig
	rest, err := parseFlags(grantsFlags(&c), args)
	if err != nil {
		return exitError, err
	}
	if len(rest) != 0 {
		return exitError, usageError(fmt.Sprintf("grants takes no arguments, got %q", rest))
	}
	if c.apply && c.upstream == "" {
		return exitError, usageError("--apply needs --upstream, the database to change")
	}
	plan, err := c.grantsPlan(ctx, c.prefix, c.purposeRoles)
	if err != nil {
		return exitError, err
	}
	if !c.apply {
		_, err := io.WriteString(stdout, plan.SQL())
		return exitOK, err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return exitError, err
	}
	defer conn.Close(context.Background())
	if err := plan.Apply(ctx, conn); err != nil {
		return exitError, err
	}
	fmt.Fprintf(stdout, "applied: %s\n", plan)
	return exitOK, nil
}

// grantsConfig is what the flags of grants and grants check set.
type grantsConfig struct {
	offline
	apply        bool
	prefix       string
	purposeRoles bool
}

// grantsFlags are the flags of grants.
func grantsFlags(c *grantsConfig) *flag.FlagSet {
	fs := newFlagSet("grants", "pgguard grants [flags]\n\nPrints the SQL that makes PostgreSQL enforce the policy's departments; --apply runs it.")
	c.register(fs)
	c.registerDatabaseURL(fs)
	fs.BoolVar(&c.apply, "apply", false, "run the SQL on --upstream in one transaction instead of printing it")
	fs.StringVar(&c.prefix, "role-prefix", grants.DefaultRolePrefix, "start of the department roles' names")
	fs.BoolVar(&c.purposeRoles, "purpose-roles", false, "also a role per department and purpose, the users NOINHERIT members, for serve --purpose-roles")
	return fs
}

// grantsCheckFlags are the flags of grants check.
func grantsCheckFlags(c *grantsConfig) *flag.FlagSet {
	fs := newFlagSet("grants check", "pgguard grants check [flags]\n\nLists the differences between the users' live privileges and the policy's.")
	c.register(fs)
	c.registerDatabaseURL(fs)
	fs.StringVar(&c.prefix, "role-prefix", grants.DefaultRolePrefix, "start of the department roles' names")
	fs.BoolVar(&c.purposeRoles, "purpose-roles", false, "also a role per department and purpose, the users NOINHERIT members, for serve --purpose-roles")
	return fs
}

// registerDatabaseURL adds --database-url, the name grants and grants
// check give the database they read and change: --upstream by another name.
func (c *grantsConfig) registerDatabaseURL(fs *flag.FlagSet) {
	fs.StringVar(&c.upstream, "database-url", "", "the database to read the catalog from and to change or compare (the same as --upstream)")
}

// grantsPlan compiles the policy over the catalog the flags name.
func (o *offline) grantsPlan(ctx context.Context, prefix string, purposeRoles bool) (*grants.Plan, error) {
	pol, err := authz.Load(o.model, o.policy, authz.Options{Unclassified: o.unclassified})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	cats, err := o.catalogs()
	if err != nil {
		return nil, err
	}
	snap, err := cats.Get(ctx, o.database)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	seqs, err := o.sequences(ctx)
	if err != nil {
		return nil, err
	}
	return grants.Compile(pol, snap, grants.Options{RolePrefix: prefix, Sequences: seqs, PurposeRoles: purposeRoles})
}

// sequences reads which columns use which sequences from the live
// database, or from the DDL file.
func (o *offline) sequences(ctx context.Context) ([]grants.SequenceUse, error) {
	if o.upstream == "" {
		ddl, err := os.ReadFile(o.schema)
		if err != nil {
			return nil, fmt.Errorf("read schema: %w", err)
		}
		return grants.SequencesFromDDL(string(ddl))
	}
	conn, err := o.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return grants.LoadSequences(ctx, conn)
}

// connect opens a connection to --database on --upstream: the database
// whose catalog the plan was compiled from, whatever database the URL names.
func (o *offline) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(o.upstream)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	if o.database != "" {
		cfg.Database = o.database
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// grantsCheck lists every difference between the privileges the policy's
// users hold in --upstream and those the policy compiles to. It exits 1
// when there is one, as policy lint does for findings.
func grantsCheck(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var c grantsConfig
	rest, err := parseFlags(grantsCheckFlags(&c), args)
	if err != nil {
		return exitError, err
	}
	if c.upstream == "" || len(rest) != 0 {
		return exitError, usageError("grants check needs --upstream, the database to compare, and no arguments")
	}
	plan, err := c.grantsPlan(ctx, c.prefix, c.purposeRoles)
	if err != nil {
		return exitError, err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return exitError, err
	}
	defer conn.Close(context.Background())
	drift, err := plan.Check(ctx, conn)
	if err != nil {
		return exitError, err
	}
	for _, d := range drift {
		fmt.Fprintln(stdout, d.String())
	}
	if len(drift) > 0 {
		fmt.Fprintf(stdout, "%d difference(s)\n", len(drift))
		return exitDenied, nil
	}
	fmt.Fprintln(stdout, "privileges match the policy")
	return exitOK, nil
}
