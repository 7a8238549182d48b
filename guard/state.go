package guard

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/catalog"
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
	// ownNames are the relation names the session's open transaction
	// changed (and their dependants' names) that the last confirmation
	// read back: own are the relations of those names as the transaction
	// sees them, uncommitted changes included, which stand in for the
	// shared catalog's (catalog.Snapshot.Overlay). ownRefused are names
	// among them that stay refused: a relation kind pgguard does not
	// model, or a transaction whose catalog reads may lag behind the
	// names the server resolves. ownKey is the server's own text of it
	// all, for the cache key.
	ownNames   []string
	own        []catalog.Relation
	ownRefused []string
	ownKey     string
	// usable are the schemas the server searches (current_schemas):
	// those of the path that exist and that the session may use.
	usable []string
}

// readUsable reads the schemas the server searches.
func (st *state) readUsable(raw []byte) error {
	st.usable = []string{}
	return json.Unmarshal(raw, &st.usable)
}

// confirmQuery reads the state in one row. current_setting with
// missing_ok returns NULL for a purpose never set. Prepared statements come
// as a JSON array of names, without the state query's own; so do the
// relations of the session's temporary schema (none while it has none).
// The last three columns are confirmOwnQuery's.
const confirmQuery = confirmBase + ` NULL, ` + confirmSchemas + `, NULL`

// confirmSchemas is the ninth column of both state queries: the schemas
// the server searches, after it skipped those on the path that do not
// exist or that the session may not use.
const confirmSchemas = `pg_catalog.to_json(pg_catalog.current_schemas(true))`

// confirmBase is the first seven columns of both state queries. Every
// function, operator and type in them is named with its schema: the query
// runs on the search_path the client chose, where a schema listed before
// pg_catalog could hold a current_setting or an = of its own that would
// answer for the server.
const confirmBase = `SELECT pg_catalog.current_setting('pgguard.purpose', true), pg_catalog.current_setting('search_path'),` +
	` current_user, pg_catalog.current_setting('standard_conforming_strings'), pg_catalog.current_setting('client_encoding'),` +
	` (SELECT coalesce(pg_catalog.json_agg(name), '[]') FROM pg_catalog.pg_prepared_statements WHERE name OPERATOR(pg_catalog.!~~) 'pgguard\_state\_%'),` +
	` (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('n', c.relname, 'k', c.relkind, 'c',` +
	` (SELECT coalesce(pg_catalog.json_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_catalog.pg_attribute a` +
	` WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)) ORDER BY c.relname), '[]')` +
	` FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() AND NOT (c.relkind OPERATOR(pg_catalog.=) 'i' OR c.relkind OPERATOR(pg_catalog.=) 'I')),`

// confirmOwnQuery is confirmQuery for a session whose open transaction
// has changed relations; sessions that have not do not pay for planning
// it. $1 is an array of the relation names DDL of the transaction named.
// The query runs inside that transaction, so pg_catalog shows it its own
// uncommitted changes: the eighth column holds every relation, outside
// temporary schemas, of those names, of the views and rules that depend
// on them and of their inheritance children and partitions (recursively),
// with the names of those dependants too, since their definitions may
// have changed with them. Views come with pg_get_viewdef, which qualifies
// every name not visible on the path in force, given in the ninth column.
// The tenth is the isolation level.
const confirmOwnQuery = confirmBase +
	ownRelationsQuery + `, ` + confirmSchemas + `, pg_catalog.current_setting('transaction_isolation')`

// ownRelationsQuery is the eighth column of confirmOwnQuery, its
// functions, operators and types named with their schemas as confirmBase's.
const ownRelationsQuery = ` (WITH RECURSIVE touched(oid) AS (` +
	`SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[])` +
	` UNION SELECT e.oid FROM touched t CROSS JOIN LATERAL (` +
	`SELECT r.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid` +
	` WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid OPERATOR(pg_catalog.=) t.oid AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass` +
	` UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) t.oid) e(oid))` +
	` SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('s', n.nspname, 'n', c.relname, 'k', c.relkind,` +
	` 'c', (SELECT coalesce(pg_catalog.json_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped),` +
	` 't', (SELECT coalesce(pg_catalog.json_agg(a.atttypid::pg_catalog.int8 ORDER BY a.attnum), '[]') FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped),` +
	` 'p', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(pn.nspname, p.relname) ORDER BY i.inhseqno), '[]') FROM pg_catalog.pg_inherits i` +
	` JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.relnamespace WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid),` +
	` 'v', CASE WHEN (c.relkind OPERATOR(pg_catalog.=) 'v' OR c.relkind OPERATOR(pg_catalog.=) 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END) ORDER BY n.nspname, c.relname), '[]')` +
	` FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace` +
	` WHERE NOT (c.relkind OPERATOR(pg_catalog.=) 'i' OR c.relkind OPERATOR(pg_catalog.=) 'I' OR c.relkind OPERATOR(pg_catalog.=) 't') AND n.nspname OPERATOR(pg_catalog.<>) 'pg_toast' AND NOT pg_catalog.starts_with(n.nspname, 'pg_temp_')` +
	` AND NOT pg_catalog.starts_with(n.nspname, 'pg_toast_temp_')` +
	` AND c.relname OPERATOR(pg_catalog.=) ANY (SELECT x.relname FROM pg_catalog.pg_class x WHERE x.oid OPERATOR(pg_catalog.=) ANY (SELECT oid FROM touched)))`

// confirmColumns is the number of columns of confirmQuery's row.
const confirmColumns = 10

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
	if json.Unmarshal(row[5], &names) != nil || s.state.readTemps(row[6]) != nil || s.state.readUsable(row[8]) != nil ||
		s.state.readOwn(s.queried, row[7], row[8], string(row[9])) != nil {
		s.state.known = false
		return
	}
	// What DDL changed before this confirmation is read: only what it
	// changes from now on waits for the next.
	s.unread = slices.DeleteFunc(s.unread, func(n string) bool { return slices.Contains(s.queried, n) })
	s.takeCode()
	s.reconcilePrepared(names)
}

// ConfirmStatement implements proxy.StateArguments: while DDL of the open
// transaction has named relations, the state query reads them back, as
// the transaction sees them, by those names.
func (s *session) ConfirmStatement() (string, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queried = s.queried[:0]
	for _, n := range s.unsettled {
		if n != sqlscan.AllRelations {
			s.queried = append(s.queried, n)
		}
	}
	if len(s.queried) == 0 {
		return confirmQuery, nil
	}
	return confirmOwnQuery, [][]byte{arrayLiteral(s.queried)}
}

// arrayLiteral renders names as a PostgreSQL array literal, every element
// quoted, so that no name can be read as anything else. A text array
// rather than JSON lets the planner see how few names there are: with a
// JSON list it expects a hundred and plans the dependants' search at a
// cost that sets off JIT compilation, hundreds of milliseconds each time.
func arrayLiteral(names []string) []byte {
	b := []byte{'{'}
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for j := 0; j < len(n); j++ {
			if n[j] == '"' || n[j] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, n[j])
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// ownRelation is one relation of the session's own view of the names its
// transaction changed, as the state query reports it.
type ownRelation struct {
	Schema     string      `json:"s"`
	Name       string      `json:"n"`
	Kind       string      `json:"k"`
	Columns    []string    `json:"c"`
	Types      []uint32    `json:"t"`
	Parents    [][2]string `json:"p"`
	Definition *string     `json:"v"`
}

// readOwn takes the relations of the names the confirmation asked about
// (queried): the overlay on the shared catalog under which the session's
// statements are decided. A name that came back as a relation kind
// pgguard does not model (a sequence, a composite type) stays refused, as
// does every name outside READ COMMITTED: there the transaction's reads of
// pg_catalog keep its first snapshot, while the server resolves names on
// the latest catalog, so a relation another session committed since could
// take a name's place unseen.
func (st *state) readOwn(queried []string, raw, schemas []byte, isolation string) error {
	st.ownNames, st.own, st.ownRefused, st.ownKey = nil, nil, nil, ""
	if len(queried) == 0 {
		return nil
	}
	var rels []ownRelation
	if err := json.Unmarshal(raw, &rels); err != nil {
		return err
	}
	var path []string
	if err := json.Unmarshal(schemas, &path); err != nil {
		return err
	}
	st.ownKey = strings.Join(queried, "\x00") + "\x00" + string(raw) + "\x00" + string(schemas) + "\x00" + isolation
	st.ownNames = append([]string(nil), queried...)
	refuse := func(name string) {
		if !slices.Contains(st.ownRefused, name) {
			st.ownRefused = append(st.ownRefused, name)
		}
	}
	for _, r := range rels {
		if !slices.Contains(st.ownNames, r.Name) {
			st.ownNames = append(st.ownNames, r.Name)
		}
		if len(r.Kind) != 1 || len(r.Types) != len(r.Columns) {
			return fmt.Errorf("malformed relation %s.%s in the state", r.Schema, r.Name)
		}
		rel := catalog.Relation{Schema: r.Schema, Name: r.Name, Kind: catalog.RelKind(r.Kind[0]), Columns: r.Columns, ColumnTypes: r.Types}
		for _, p := range r.Parents {
			rel.Parents = append(rel.Parents, catalog.QualifiedName{Schema: p[0], Name: p[1]})
		}
		switch rel.Kind {
		case catalog.Table, catalog.PartitionedTable, catalog.ForeignTable:
		case catalog.View, catalog.MaterializedView:
			if r.Definition == nil {
				refuse(r.Name)
				continue
			}
			// pg_get_viewdef left unqualified exactly the names visible on
			// the path in force; the analysis resolves them on that path.
			rel.ViewDefinition, rel.DefinitionSearchPath = *r.Definition, path
		default:
			refuse(r.Name)
			continue
		}
		st.own = append(st.own, rel)
	}
	if isolation != "read committed" {
		for _, n := range st.ownNames {
			refuse(n)
		}
	}
	slices.Sort(st.ownNames)
	slices.Sort(st.ownRefused)
	return nil
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
// refused at every use. A name that may hold either of two statements (a
// Parse or PREPARE the server may have skipped, replaced) keeps both: the
// names say nothing of which one the server holds, and a confirmation
// without errors says nothing of the segment with the error in which it
// was made; only a change of the name whose segment ends without an error
// settles it (session.settle).
func (s *session) reconcilePrepared(names []string) {
	for name := range s.prepared {
		// The unnamed statement is never listed; its changes settle by
		// segment alone.
		if name != "" && !slices.Contains(names, name) {
			delete(s.prepared, name)
		}
	}
	for _, name := range names {
		if s.prepared[name] == nil {
			s.setPrepared(name, &prepared{unknown: true})
		}
	}
}
