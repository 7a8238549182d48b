package main

import (
	"context"
	"fmt"
	"io"

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
	var o offline
	var apply bool
	var prefix string
	fs := newFlagSet("grants")
	o.register(fs)
	fs.BoolVar(&apply, "apply", false, "run the SQL on --upstream in one transaction instead of printing it")
	fs.StringVar(&prefix, "role-prefix", grants.DefaultRolePrefix, "start of the department roles' names")
	if err := parseFlags(fs, args); err != nil {
		return exitError, err
	}
	if fs.NArg() != 0 {
		return exitError, usageError("grants takes no arguments")
	}
	if apply && o.upstream == "" {
		return exitError, usageError("--apply needs --upstream, the database to change")
	}
	plan, err := o.grantsPlan(ctx, prefix)
	if err != nil {
		return exitError, err
	}
	if !apply {
		_, err := io.WriteString(stdout, plan.SQL())
		return exitOK, err
	}
	conn, err := pgx.Connect(ctx, o.upstream)
	if err != nil {
		return exitError, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if err := plan.Apply(ctx, conn); err != nil {
		return exitError, err
	}
	fmt.Fprintf(stdout, "applied: %s\n", plan)
	return exitOK, nil
}

// grantsPlan compiles the policy over the catalog the flags name.
func (o *offline) grantsPlan(ctx context.Context, prefix string) (*grants.Plan, error) {
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
	return grants.Compile(pol, snap, grants.Options{RolePrefix: prefix})
}

// grantsCheck lists every difference between the privileges the policy's
// users hold in --upstream and those the policy compiles to. It exits 1
// when there is one, as policy lint does for findings.
func grantsCheck(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var o offline
	var prefix string
	fs := newFlagSet("grants check")
	o.register(fs)
	fs.StringVar(&prefix, "role-prefix", grants.DefaultRolePrefix, "start of the department roles' names")
	if err := parseFlags(fs, args); err != nil {
		return exitError, err
	}
	if o.upstream == "" || fs.NArg() != 0 {
		return exitError, usageError("grants check needs --upstream, the database to compare")
	}
	plan, err := o.grantsPlan(ctx, prefix)
	if err != nil {
		return exitError, err
	}
	conn, err := pgx.Connect(ctx, o.upstream)
	if err != nil {
		return exitError, fmt.Errorf("connect: %w", err)
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
