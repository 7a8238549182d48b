package authz

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"strings"
)

// policyLine is one non-blank, non-comment line of a policy file, split the
// way Casbin's file adapter splits it (persist.LoadPolicyLine): the line is
// trimmed of surrounding white space, lines that are then empty or start
// with '#' are skipped, and the rest is read as one CSV record with ',' as
// separator and leading spaces of each field dropped. Casbin keeps trailing
// spaces and any '#' inside a field, which is why lint reports them.
type policyLine struct {
	line   int      // 1-based line number
	raw    string   // the line as written, without line terminator
	fields []string // the CSV fields; fields[0] is the rule type
	err    error    // CSV syntax error, fields is nil then
}

// parsePolicy splits a policy file into its rule lines. It never fails: a
// line Casbin could not read carries its error, so lint can name the line.
func parsePolicy(data []byte) []policyLine {
	var out []policyLine
	for i, raw := range splitLines(data) {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pl := policyLine{line: i + 1, raw: raw}
		if len(raw) > bufio.MaxScanTokenSize {
			// Casbin's adapter reads with a default bufio.Scanner and gives up.
			pl.err = bufio.ErrTooLong
		} else {
			pl.fields, pl.err = readCSVLine(line)
			if pl.err != nil {
				pl.fields = nil
			}
		}
		out = append(out, pl)
	}
	return out
}

// splitLines splits like bufio.ScanLines: at '\n', dropping one '\r' before
// it, with no empty last line for a file that ends in a newline.
func splitLines(data []byte) []string {
	var lines []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		lines = append(lines, string(bytes.TrimSuffix(line, []byte{'\r'})))
	}
	return lines
}

// readCSVLine reads one trimmed line with the reader settings Casbin uses.
func readCSVLine(line string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(line))
	r.Comma = ','
	r.Comment = '#'
	r.TrimLeadingSpace = true
	return r.Read()
}

// ruleText renders a rule the way it is quoted in explanations and reload
// diffs: "p, marketing, *, customer_identity, read, deny".
func ruleText(fields []string) string { return strings.Join(fields, ", ") }
