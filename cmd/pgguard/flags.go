package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// newFlagSet makes the flag set of a command whose errors are returned, not
// fatal. synopsis is the command line its help starts with, after "usage:".
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("pgguard "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// helpRequested is returned for -h or --help: run prints the command's
// usage on standard output and exits 0.
type helpRequested struct{ fs *flag.FlagSet }

func (h helpRequested) Error() string { return "help requested" }

// printHelp writes the usage of the command whose help was asked for.
func (h helpRequested) printHelp(w io.Writer) {
	h.fs.SetOutput(w)
	h.fs.Usage()
	h.fs.SetOutput(io.Discard)
}

// parseFlags parses args, in which flags and arguments may come in any
// order (an argument "--" ends the flags: everything after it is an
// argument), then fills every flag not given on the command line from
// PGGUARD_<FLAG> in the environment: the flag wins. It returns the
// arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	positional, err := parseCommandLine(fs, args)
	if err != nil {
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil || alternativeGiven(f.Name, given) {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return positional, err
}

// alternatives are flags that each name where a command reads its catalog
// from. One given on the command line keeps the environment's values of
// the others out, so that a PGGUARD_UPSTREAM set for the proxy does not
// turn "check --schema FILE" into a connection.
var alternatives = [][]string{{"upstream", "database-url", "schema"}}

// alternativeGiven reports whether a flag that stands in for name was
// given on the command line.
func alternativeGiven(name string, given map[string]bool) bool {
	for _, group := range alternatives {
		if !slices.Contains(group, name) {
			continue
		}
		for _, other := range group {
			if other != name && given[other] {
				return true
			}
		}
	}
	return false
}

// parseCommandLine parses args alone, flags and arguments in any order.
func parseCommandLine(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpRequested{fs}
			}
			return nil, usageError(fmt.Sprintf("%s: %v", commandName(fs), err))
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// noArguments says what is wrong when a command that takes no arguments
// got some.
func noArguments(fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return usageError(fmt.Sprintf("%s takes no arguments, got %q (flags are written --name value)", commandName(fs), args))
}

// commandName is the command a flag set belongs to, without "pgguard".
func commandName(fs *flag.FlagSet) string { return strings.TrimPrefix(fs.Name(), "pgguard ") }

// envName is the environment variable of a flag: PGGUARD_<FLAG>.
func envName(flagName string) string {
	return "PGGUARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
