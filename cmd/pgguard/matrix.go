package main

import (
	"flag"
	"fmt"
	"html"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/pgguard/pgguard/authz"
)

// matrixHeader names the columns of every matrix format.
var matrixHeader = []string{"department", "purpose", "data", "read", "write", "execute", "ddl"}

// matrixLegend explains the matrix; every format prints it.
var matrixLegend = []string{
	"allow: a rule allows the act. deny: a deny rule refuses it, whatever allows it. -: no rule, so the act is refused on classified data.",
	`A purpose row "child < parent" holds for the child purpose, which gets the rules for its parents too; ` +
		`"*" rows hold for every purpose, and when none is declared.`,
	`A department "role < department" gets the rules of the departments it belongs to too.`,
	`Data is a category, or a column pattern, function, extension or ddl that a rule names; a column gets the rules of all of its categories and patterns, and deny wins.`,
	`Rows where no rule applies, and purpose rows that say the same as the "*" row, are left out: those acts are refused on classified data.`,
}

// policyMatrix prints which department may do what with which data for
// which purpose, as authz judges it: `pgguard policy matrix`.
func policyMatrix(args []string, stdout io.Writer) (int, error) {
	var c matrixConfig
	fs := matrixFlags(&c)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return exitError, err
	}
	render, ok := matrixFormats[c.format]
	if !ok || len(rest) != 0 {
		return exitError, usageError("policy matrix takes --format text, markdown or html, and no arguments")
	}
	p, err := authz.Load(c.model, c.policy, authz.Options{})
	if err != nil {
		return exitError, fmt.Errorf("policy: %w", err)
	}
	if err := render(stdout, matrixCells(p.Matrix())); err != nil {
		return exitError, err
	}
	return exitOK, nil
}

// matrixConfig is what the flags of policy matrix set.
type matrixConfig struct{ model, policy, format string }

// matrixFlags are the flags of policy matrix.
func matrixFlags(c *matrixConfig) *flag.FlagSet {
	fs := newFlagSet("policy matrix", "pgguard policy matrix [flags]")
	fs.StringVar(&c.model, "model", "model.conf", "Casbin model file")
	fs.StringVar(&c.policy, "policy", "policy.csv", "Casbin policy file")
	fs.StringVar(&c.format, "format", "text", "text|markdown|html")
	return fs
}

// matrixFormats render the cells of a matrix, header first.
var matrixFormats = map[string]func(io.Writer, [][]string) error{
	"text":     matrixText,
	"markdown": matrixMarkdown,
	"html":     matrixHTML,
}

// matrixCells turns the rows into the cells every format prints.
func matrixCells(rows []authz.MatrixRow) [][]string {
	out := [][]string{matrixHeader}
	for _, r := range rows {
		purpose := strings.Join(r.PurposePath, " < ")
		if r.Purpose == authz.AnyPurpose {
			purpose = "*"
		}
		line := []string{strings.Join(r.DepartmentPath, " < "), purpose, r.Data}
		for _, o := range r.Outcomes {
			line = append(line, orDash(string(o)))
		}
		out = append(out, line)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// matrixText is an aligned table for the terminal, then the legend.
func matrixText(w io.Writer, cells [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, line := range cells {
		if i == 0 {
			line = upper(line)
		}
		fmt.Fprintln(tw, strings.Join(line, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\n"+strings.Join(matrixLegend, "\n"))
	return err
}

func upper(line []string) []string {
	out := make([]string, len(line))
	for i, s := range line {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// matrixMarkdown is a GitHub-style table, names in code spans so that
// '*' and '_' stay literal, then the legend as a list.
func matrixMarkdown(w io.Writer, cells [][]string) error {
	var b strings.Builder
	for i, line := range cells {
		row := line
		if i > 0 {
			row = append([]string(nil), line...)
			for j := 0; j < 3; j++ {
				row[j] = "`" + strings.ReplaceAll(row[j], "|", `\|`) + "`"
			}
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		if i == 0 {
			b.WriteString(strings.Repeat("| --- ", len(line)) + "|\n")
		}
	}
	b.WriteString("\n")
	for _, l := range matrixLegend {
		b.WriteString("- " + l + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// matrixHTML is a table for a wiki page; each outcome cell has its
// outcome as class, for styling.
func matrixHTML(w io.Writer, cells [][]string) error {
	var b strings.Builder
	b.WriteString("<table class=\"pgguard-matrix\">\n<thead>\n<tr>")
	for _, h := range cells[0] {
		b.WriteString("<th>" + html.EscapeString(h) + "</th>")
	}
	b.WriteString("</tr>\n</thead>\n<tbody>\n")
	for _, line := range cells[1:] {
		b.WriteString("<tr>")
		for j, c := range line {
			if j < 3 {
				b.WriteString("<td><code>" + html.EscapeString(c) + "</code></td>")
			} else {
				b.WriteString("<td class=\"" + outcomeClass(c) + "\">" + html.EscapeString(c) + "</td>")
			}
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n<ul>\n")
	for _, l := range matrixLegend {
		b.WriteString("<li>" + html.EscapeString(l) + "</li>\n")
	}
	b.WriteString("</ul>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func outcomeClass(cell string) string {
	if cell == "-" {
		return "none"
	}
	return cell
}
