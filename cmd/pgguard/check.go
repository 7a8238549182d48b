package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/guard"
	"github.com/rs/zerolog"
)

// offline is what check and policy test share: a policy and a catalog from
// a live database or a DDL file.
type offline struct {
	model, policy, upstream, schema, database, unclassified string
}

func (o *offline) register(fs *flag.FlagSet) {
	fs.StringVar(&o.model, "model", "model.conf", "Casbin model file")
	fs.StringVar(&o.policy, "policy", "policy.csv", "Casbin policy file")
	fs.StringVar(&o.upstream, "upstream", "", "read the catalog from this PostgreSQL (a URL with credentials)")
	fs.StringVar(&o.schema, "schema", "", "read the catalog from this DDL file instead")
	fs.StringVar(&o.database, "database", "postgres", "database the statement runs in")
	fs.StringVar(&o.unclassified, "unclassified", "allow", "allow|deny: columns no g2 rule classifies")
}

// catalogs returns the catalog source the flags name.
func (o *offline) catalogs() (*catalog.Cache, error) {
	switch {
	case o.upstream != "" && o.schema != "":
		return nil, usageError("give --upstream or --schema, not both")
	case o.upstream != "":
		return catalog.NewCache(catalog.Dialer(o.upstream), time.Hour), nil
	case o.schema != "":
		ddl, err := os.ReadFile(o.schema)
		if err != nil {
			return nil, fmt.Errorf("read schema: %w", err)
		}
		snap, err := catalog.FromDDL(o.database, string(ddl))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", o.schema, err)
		}
		return catalog.NewCache(func(context.Context, string) (*catalog.Snapshot, error) { return snap, nil }, 0), nil
	}
	return nil, usageError("give --upstream URL or --schema FILE.sql for the catalog")
}

// guard builds the enforcement logic exactly as serve uses it.
func (o *offline) guard() (*guard.Guard, error) {
	engine, err := authz.NewEngine(o.model, o.policy, authz.Options{Unclassified: o.unclassified})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	cats, err := o.catalogs()
	if err != nil {
		return nil, err
	}
	return guard.New(guard.Config{Policy: engine, Catalogs: cats, Logger: zerolog.Nop()})
}

// checkConfig is what `pgguard check` is configured with.
type checkConfig struct {
	offline
	user, purpose string
	asJSON        bool
}

func checkFlags(c *checkConfig) *flag.FlagSet {
	fs := newFlagSet("check", `pgguard check [flags] "SQL"`)
	c.register(fs)
	fs.StringVar(&c.user, "user", "", "the user the statement runs as (required)")
	fs.StringVar(&c.purpose, "purpose", "", "the declared purpose")
	fs.BoolVar(&c.asJSON, "json", false, "print the decision as JSON")
	return fs
}

// check decides on one statement: exit 0 allowed, 1 denied, 2 error.
func check(ctx context.Context, args []string, stdout io.Writer) (int, error) {
	var c checkConfig
	fs := checkFlags(&c)
	sql, err := parseFlags(fs, args)
	if err != nil {
		return exitError, err
	}
	switch {
	case len(sql) == 0:
		return exitError, usageError(`check needs one "SQL" argument`)
	case len(sql) > 1:
		return exitError, usageError(fmt.Sprintf(`check needs one "SQL" argument, got %d: %q (quote the statement as one argument)`, len(sql), sql))
	case c.user == "":
		return exitError, usageError("check needs --user")
	}
	o, user, purpose, asJSON := &c.offline, c.user, c.purpose, c.asJSON
	g, err := o.guard()
	if err != nil {
		return exitError, err
	}
	ex := g.Explain(ctx, user, o.database, purpose, sql[0])
	if ex.CatalogVersion == "" {
		return exitError, fmt.Errorf("catalog of database %q could not be loaded", o.database)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			return exitError, err
		}
	} else {
		printExplanation(stdout, ex)
	}
	if ex.Allowed {
		return exitOK, nil
	}
	return exitDenied, nil
}

// printExplanation shows a decision for people: the verdict, then each
// column a statement touches on a line of its own, with its categories and
// the rule that decided it.
func printExplanation(w io.Writer, ex guard.Explanation) {
	if ex.Allowed {
		fmt.Fprintln(w, "ALLOWED")
	} else {
		fmt.Fprintln(w, "DENIED:", ex.Message)
		if ex.Detail != "" && !anyDeniedAccess(ex) {
			fmt.Fprintln(w, "  why: ", ex.Detail)
		}
		for _, d := range ex.Denied {
			if d.Column != "" && !explained(ex, d.Column, d.Act) {
				fmt.Fprintf(w, "  denied: %s %s (%s): %s\n", d.Act, d.Column, orNone(d.Category), d.Reason)
			}
		}
		if ex.Hint != "" {
			fmt.Fprintln(w, "  hint: ", ex.Hint)
		}
	}
	for i, st := range ex.Statements {
		fmt.Fprintf(w, "statement %d (purpose %s): %s\n", i+1, orNone(st.Purpose), st.Statement)
		if st.Refused != "" {
			fmt.Fprintln(w, "  cannot be analysed:", st.Refused)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range st.Accesses {
			verdict := "allowed"
			if !a.Allowed {
				verdict = "denied"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\tin %s\t%s\n", verdict, a.Act, a.Column, orNone(strings.Join(a.Categories, ",")), a.Clause, a.DecidedBy)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "policy %s, catalog %s\n", ex.PolicyVersion, ex.CatalogVersion)
}

// anyDeniedAccess reports whether some access line shows a denial, which
// then says more than the error's detail.
func anyDeniedAccess(ex guard.Explanation) bool {
	for _, st := range ex.Statements {
		for _, a := range st.Accesses {
			if !a.Allowed {
				return true
			}
		}
	}
	return false
}

// explained reports whether a statement's access lines already show the
// denied column (they do not show functions or attaching code).
func explained(ex guard.Explanation, column, act string) bool {
	for _, st := range ex.Statements {
		for _, a := range st.Accesses {
			if a.Column == column && a.Act == act && !a.Allowed {
				return true
			}
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
