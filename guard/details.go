package guard

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/pgguard/pgguard/sqlscan"
)

// An error's DETAIL can show stored values: a constraint violation shows
// the failing row ("Failing row contains (...)"), the key of a unique,
// exclusion or foreign key violation, or the key of another row that
// conflicts with it. PostgreSQL leaves out the columns the user may not
// SELECT; pgguard withholds the whole detail when it could show a column
// the session may not read under the policy. The text is translated under
// lc_messages, so the decision rests on the error's fields alone: its
// SQLSTATE and the schema and table it names.

// withheldDetail replaces a detail pgguard withholds.
const withheldDetail = "pgguard: detail removed: it would show values of columns this session may not read"

// mayShowRows reports whether an error's detail may show stored values:
// integrity constraint violations (class 23), WITH CHECK OPTION violations
// (class 44, which name no table) and any error that names a table.
func mayShowRows(f *proxy.ErrorFields) bool {
	return bytes.HasPrefix(f.Code, []byte("23")) || bytes.HasPrefix(f.Code, []byte("44")) || len(f.Table) > 0
}

// A session is every kind of interceptor the proxy asks for: one whose
// methods drifted from the proxy's would silently stop being asked.
var (
	_ proxy.QuickSessionInterceptor = (*session)(nil)
	_ proxy.StateConfirmer          = (*session)(nil)
	_ proxy.ErrorRewriter           = (*session)(nil)
)

// RewriteError implements proxy.ErrorRewriter: a detail that may show
// values of columns the session may not read is replaced by a fixed text,
// and the error is otherwise left as the server sent it. Monitor mode logs
// and counts it, and forwards the error unchanged.
func (s *session) RewriteError(body []byte, f proxy.ErrorFields) ([]byte, bool) {
	if !f.HasDetail || !mayShowRows(&f) {
		return nil, false
	}
	s.mu.Lock()
	reason := s.unreadable(&f)
	s.mu.Unlock()
	if reason == "" {
		return nil, false
	}
	monitor := s.g.cfg.Mode == alert.ModeMonitor
	s.logWithheld(&f, reason, monitor)
	if monitor {
		s.count(func(m *alert.Metrics) { m.ErrorDetails.WithLabelValues(alert.DetailFlagged).Inc() })
		return nil, false
	}
	s.count(func(m *alert.Metrics) { m.ErrorDetails.WithLabelValues(alert.DetailRemoved).Inc() })
	return proxy.ReplaceErrorField(body, 'D', withheldDetail), true
}

// unreadable says why the session may not see a detail of the table f
// names, or "" when it may read every column of that table under every
// purpose it had since the server last confirmed its state. The table is
// looked up as the session's statements are decided: a temporary table of
// the session holds what its lineage says, and a relation its open
// transaction changed is the one the server last showed the session. A
// name whose definition is not settled (DDL since the last confirmation,
// or another session's DDL the shared catalog has not read again) is
// unreadable. s.mu is held.
func (s *session) unreadable(f *proxy.ErrorFields) string {
	switch {
	case !s.state.known || s.segmentUnknown:
		return "the session's state is not confirmed"
	case len(f.Table) == 0 || len(f.Schema) == 0:
		return "the error names no table"
	}
	table := string(f.Table)
	if undecided := s.undecidable(); slices.Contains(undecided, table) || slices.Contains(undecided, sqlscan.AllRelations) {
		return "the table's definition is not settled"
	}
	pol := s.g.cfg.Policy.Policy()
	if strings.HasPrefix(string(f.Schema), "pg_temp_") {
		return s.unreadableTemp(table, pol)
	}
	snap, ok := s.g.cfg.Catalogs.Current(s.ps.Database)
	if !ok {
		return "the catalog is not loaded"
	}
	snap = s.withOwn(snap)
	rel, ok := snap.Relation(string(f.Schema), table)
	if !ok {
		return "the table is unknown to the catalog"
	}
	return s.deniedUnderAnyPurpose(pol, tableReads(snap, rel))
}

// unreadableTemp judges a detail of a table in a temporary schema. Only
// the session's own temporary tables are readable: PostgreSQL lets no
// session touch another's temporary tables' rows. Their rows are what the
// session's own statements put there, so a detail may show what any of
// those statements read (the temporary lineage), exactly what reading the
// table in a statement counts as.
func (s *session) unreadableTemp(table string, pol *authz.Policy) string {
	if !slices.ContainsFunc(s.state.tempTables, func(t sqlscan.TempTable) bool { return t.Name == table }) {
		return "the table is not one of the session's temporary tables"
	}
	lineage, _ := s.lineage()
	reads := make([]authz.Access, 0, len(lineage))
	for _, a := range lineage {
		if a.Act == sqlscan.Read {
			reads = append(reads, authz.Access{Column: a.Schema + "." + a.Table + "." + a.Column, Act: authz.ActRead})
		}
	}
	return s.deniedUnderAnyPurpose(pol, reads)
}

// deniedUnderAnyPurpose says which of reads the session may not make under
// one of the purposes it had since its state was last confirmed, or "".
func (s *session) deniedUnderAnyPurpose(pol *authz.Policy, reads []authz.Access) string {
	if len(reads) == 0 {
		return ""
	}
	for _, purpose := range s.purposes {
		if d := pol.Decide(s.ps.User, purpose, reads); !d.Allowed {
			return fmt.Sprintf("column %s may not be read %s", d.Denied[0].Column, purposeText(purpose))
		}
	}
	return ""
}

func purposeText(purpose string) string {
	if purpose == "" {
		return "without a declared purpose"
	}
	return fmt.Sprintf("for purpose %q", purpose)
}

// maxLineage bounds the walk up and down a table's inheritance tree.
const maxLineage = 32

// tableReads are the reads of every column of rel, as a statement reading
// the table would make them: a column is also its parents' column of the
// same name (a policy on a partitioned table covers its partitions) and its
// partitions' and children's.
func tableReads(snap *catalog.Snapshot, rel *catalog.Relation) []authz.Access {
	var out []authz.Access
	add := func(schema, table, column string) {
		out = append(out, authz.Access{Column: schema + "." + table + "." + column, Act: authz.ActRead})
	}
	for _, col := range rel.Columns {
		add(rel.Schema, rel.Name, col)
		walkUp(snap, rel, col, 0, add)
		walkDown(snap, rel, col, 0, add)
	}
	return out
}

func walkUp(snap *catalog.Snapshot, rel *catalog.Relation, col string, depth int, add func(schema, table, column string)) {
	if depth > maxLineage {
		return
	}
	for _, p := range rel.Parents {
		parent, ok := snap.Relation(p.Schema, p.Name)
		if !ok {
			// Named but not described: a policy on it still applies.
			add(p.Schema, p.Name, col)
			continue
		}
		if hasColumn(parent, col) {
			add(parent.Schema, parent.Name, col)
		}
		walkUp(snap, parent, col, depth+1, add)
	}
}

func walkDown(snap *catalog.Snapshot, rel *catalog.Relation, col string, depth int, add func(schema, table, column string)) {
	if depth > maxLineage {
		return
	}
	for _, child := range snap.Children(rel.Schema, rel.Name) {
		if hasColumn(child, col) {
			add(child.Schema, child.Name, col)
		}
		walkDown(snap, child, col, depth+1, add)
	}
}

func hasColumn(r *catalog.Relation, name string) bool {
	for _, c := range r.Columns {
		if c == name {
			return true
		}
	}
	return false
}

// logWithheld logs a withheld detail with what identifies the error, never
// a value: the SQLSTATE, the table and constraint names and the reason.
func (s *session) logWithheld(f *proxy.ErrorFields, reason string, monitor bool) {
	ev := s.ps.Logger.Info().Bytes("sqlstate", f.Code).Str("reason", reason)
	if len(f.Table) > 0 {
		ev = ev.Str("table", string(f.Schema)+"."+string(f.Table))
	}
	if len(f.Constraint) > 0 {
		ev = ev.Bytes("constraint", f.Constraint)
	}
	if monitor {
		ev.Bool("monitor", true).Msg("error detail withheld in enforce mode; forwarded unchanged in monitor mode")
		return
	}
	ev.Msg("error detail withheld: it could show values of columns the session may not read")
}
