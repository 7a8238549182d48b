package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// newFlagSet makes a flag set whose errors are returned, not fatal.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("pgguard "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args, then fills every flag not given on the command
// line from PGGUARD_<FLAG> in the environment: the flag wins.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
		}
		return usageError(err.Error())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// envName is the environment variable of a flag: PGGUARD_<FLAG>.
func envName(flagName string) string {
	return "PGGUARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSetWithConfig lets a subcommand return its flag set for reuse by
// tests that compare flags with the deployment files.
type flagSetWithConfig struct{ *flag.FlagSet }
