package guard

import (
	"encoding/json"
	"slices"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/sqlscan"
)

// PurposeParameter is the run-time parameter through which clients declare
// their purpose.
const PurposeParameter = "pgguard.purpose"

// state is what a session's verdicts depend on besides the statement:
// read from the server (ConfirmQuery) at the start of the session and after
// every statement that may change it. Between two confirmations it moves
// only by the changes pgguard follows exactly (a literal SET or SET LOCAL
// of the purpose or search_path) made earlier in the same sync segment,
// where an error would stop everything after it anyway.
type state struct {
	// known is false when the server could not be asked (a failed
	// transaction block refuses every query): then every statement that
	// depends on the state is refused until the next confirmation.
	known   bool
	purpose string
	// path is the search_path in force; nil when unknown (every candidate
	// counts).
	path []string
	// role is the current role, which "$user" in the path stands for.
	role          string
	scs, encoding string
	// temps are the names of the relations in the session's temporary
	// schema, sorted; tempTables the plain tables among them, with their
	// columns; tempKey the server's own text of both, for the cache key.
	temps      []string
	tempTables []sqlscan.TempTable
	tempKey    string
}

// confirmQuery reads the state in one row. current_setting with
// missing_ok returns NULL for a purpose never set. Prepared statements come
// as a JSON array of names, without the state query's own; so do the
// relations of the session's temporary schema (none while it has none).
const confirmQuery = `SELECT current_setting('pgguard.purpose', true), current_setting('search_path'),` +
	` current_user, current_setting('standard_conforming_strings'), current_setting('client_encoding'),` +
	` (SELECT coalesce(json_agg(name), '[]') FROM pg_catalog.pg_prepared_statements WHERE name NOT LIKE 'pgguard\_state\_%'),` +
	` (SELECT coalesce(json_agg(json_build_object('n', c.relname, 'k', c.relkind, 'c',` +
	` (SELECT coalesce(json_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_catalog.pg_attribute a` +
	` WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)) ORDER BY c.relname), '[]')` +
	` FROM pg_catalog.pg_class c WHERE c.relnamespace = pg_catalog.pg_my_temp_schema() AND c.relkind NOT IN ('i', 'I'))`

// confirmColumns is the number of columns of confirmQuery's row.
const confirmColumns = 7

// ConfirmQuery implements proxy.StateConfirmer.
func (s *session) ConfirmQuery() string { return confirmQuery }

// Confirmed implements proxy.StateConfirmer: the server's state replaces
// whatever pgguard assumed.
func (s *session) Confirmed(row [][]byte, e *pgproto3.ErrorResponse, txStatus byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stateGen++
	s.segmentUnknown = false
	// Only a state read outside a transaction block is one no transaction
	// control can undo.
	s.settled = false
	defer func() { s.settled = s.state.known && txStatus == 'I' }()
	errorsSeen := s.sawError
	s.sawError = false
	if e != nil || len(row) != confirmColumns {
		// Keep the last state for reading transaction control; decide
		// nothing else on it (decideStatement) until the next confirmation.
		s.state.known = false
		return
	}
	st := state{known: true, purpose: string(row[0]), role: string(row[2]), scs: string(row[3]), encoding: string(row[4])}
	st.path = sqlscan.ParseSearchPath(string(row[1]))
	s.noteStartRole(st.role)
	if st.purpose != s.state.purpose {
		s.warnUnknownPurpose(st.purpose)
	}
	s.state = st
	s.purposes = append(s.purposes[:0], st.purpose)
	var names []string
	if json.Unmarshal(row[5], &names) != nil || s.state.readTemps(row[6]) != nil {
		s.state.known = false
		return
	}
	s.reconcilePrepared(names, errorsSeen)
}

// tempRelation is one relation of the session's temporary schema as the
// state query reports it.
type tempRelation struct {
	Name    string   `json:"n"`
	Kind    string   `json:"k"`
	Columns []string `json:"c"`
}

// readTemps takes the session's temporary relations from the state
// query's JSON: every name, and the plain tables' columns, which the
// analysis resolves names against (a table's rows are what the session's
// own checked statements put there). A temporary view, sequence or other
// relation stays a name that is refused.
func (st *state) readTemps(raw []byte) error {
	var rels []tempRelation
	if err := json.Unmarshal(raw, &rels); err != nil {
		return err
	}
	st.temps, st.tempTables, st.tempKey = nil, nil, ""
	if len(rels) == 0 {
		return nil
	}
	st.tempKey = string(raw)
	for _, r := range rels {
		st.temps = append(st.temps, r.Name)
		if (r.Kind == "r" || r.Kind == "p") && len(r.Columns) > 0 {
			st.tempTables = append(st.tempTables, sqlscan.TempTable{Name: r.Name, Columns: r.Columns})
		}
	}
	return nil
}

// reconcilePrepared makes the records of prepared statements match the
// names the server holds. A record the server lacks is dropped; a name the
// server holds that pgguard has no record of is recorded as unknown, and
// refused at every use. Without errors since the last confirmation every
// Close and Parse pgguard forwarded took effect, so a name closed and
// parsed again holds its last text only.
func (s *session) reconcilePrepared(names []string, errorsSeen bool) {
	for name, p := range s.prepared {
		// The unnamed statement is never listed; its changes settle by
		// segment alone.
		if name != "" && !slices.Contains(names, name) {
			delete(s.prepared, name)
			continue
		}
		if !errorsSeen && p.replaced != nil {
			p.replaced, p.closing = nil, false
		}
	}
	for _, name := range names {
		if s.prepared[name] == nil {
			s.prepared[name] = &prepared{unknown: true}
		}
	}
}
