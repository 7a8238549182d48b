package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Affected returns the relation names and OIDs that DDL naming names may
// have changed, as far as s can tell: the relations of those names in
// any schema, and recursively their inheritance children and partitions
// (which gain and lose columns with them, and whose parents' names are
// part of their definition), their ancestors (whose reads without ONLY
// read theirs and their new children's rows) and the views that read any
// of them (whose definitions name them, and which DROP ... CASCADE drops
// with them).
// names are among the names returned, whether s knows them or not; both
// lists are sorted.
func (s *Snapshot) Affected(names []string) ([]string, []uint32) {
	seenNames := make(map[string]bool, len(names))
	seen := map[*Relation]bool{}
	var queue []*Relation
	for _, n := range names {
		seenNames[n] = true
		queue = append(queue, s.byName[n]...)
	}
	var oids []uint32
	for len(queue) > 0 {
		r := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		seenNames[r.Name] = true
		if r.OID != 0 {
			oids = append(oids, r.OID)
			queue = append(queue, s.readers[r.OID]...)
		}
		queue = append(queue, s.children[QualifiedName{r.Schema, r.Name}]...)
		// A read of an ancestor without ONLY reads r's rows too: what it
		// reads changes with r, and with r's new children.
		for _, p := range r.Parents {
			if pr := s.relations[p]; pr != nil {
				queue = append(queue, pr)
			}
		}
	}
	out := make([]string, 0, len(seenNames))
	for n := range seenNames {
		out = append(out, n)
	}
	sort.Strings(out)
	slices.Sort(oids)
	return out, slices.Compact(oids)
}

// relationsRead is what the targeted read reports: every name it covered
// (those asked for and those of every relation that depends on them now),
// every relation that now carries one of those names, and the data types
// those relations' rows and columns have.
type relationsRead struct {
	Names     []string       `json:"names"`
	Relations []readRelation `json:"rels"`
	Types     [][5]any       `json:"types"`
}

// readRelation is one relation of a targeted read.
type readRelation struct {
	OID        int64       `json:"o"`
	Schema     string      `json:"s"`
	Name       string      `json:"n"`
	Kind       string      `json:"k"`
	Columns    []string    `json:"c"`
	Types      []int64     `json:"t"`
	Parents    [][2]string `json:"p"`
	Definition *string     `json:"v"`
	DependsOn  []int64     `json:"d"`
	RowType    int64       `json:"r"`
	ArrayType  int64       `json:"a"`
}

// relationsByNameQuery reads, in one statement (so from one state of the
// catalog), the relations of the names $1 and the OIDs $2, and,
// recursively, the views and rules that read them and their inheritance
// children and partitions: every relation, outside temporary schemas, that
// carries one of those names now, the names themselves, and the types
// involved. The OIDs find a relation renamed since; the names find one
// created or moved since. The connection's search_path is pg_catalog, so
// view definitions come as Load reads them.
const relationsByNameQuery = `WITH RECURSIVE touched(oid) AS (
	SELECT c.oid FROM pg_catalog.pg_class c
	WHERE c.relname = ANY ($1::pg_catalog.text[]::pg_catalog.name[]) OR c.oid = ANY ($2::pg_catalog.int8[]::pg_catalog.oid[])
	UNION
	SELECT e.oid FROM touched t CROSS JOIN LATERAL (
		SELECT r.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
		WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
		AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = t.oid
		UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = t.oid) e(oid)
), covered(name) AS (
	SELECT pg_catalog.unnest($1::pg_catalog.text[])
	UNION SELECT c.relname::text FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT oid FROM touched)
), rels AS (
	SELECT c.oid, c.relname, c.relkind, c.reltype, n.nspname,
		coalesce((SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = c.reltype), 0) AS typarray
	FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + visibleSchema + `
	AND c.relname = ANY (ARRAY(SELECT name FROM covered)::pg_catalog.name[])
)
SELECT pg_catalog.json_build_object(
	'names', (SELECT pg_catalog.json_agg(name ORDER BY name) FROM covered),
	'rels', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('o', c.oid::int8, 's', c.nspname, 'n', c.relname, 'k', c.relkind,
		'r', c.reltype::int8, 'a', c.typarray::int8,
		'c', (SELECT coalesce(pg_catalog.json_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
		't', (SELECT coalesce(pg_catalog.json_agg(a.atttypid::int8 ORDER BY a.attnum), '[]') FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
		'p', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(pn.nspname, p.relname) ORDER BY i.inhseqno), '[]')
			FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
			JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid),
		'v', CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END,
		'd', CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.array_to_json(ARRAY(` + viewDependsOn + `)) END
	) ORDER BY c.nspname, c.relname), '[]') FROM rels c),
	'types', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(t.oid::int8, n.nspname, t.typname, t.typtype, t.typcategory)), '[]')
		FROM (SELECT reltype FROM rels UNION SELECT typarray FROM rels
			UNION SELECT a.atttypid FROM rels r JOIN pg_catalog.pg_attribute a
				ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped) x(oid)
		JOIN pg_catalog.pg_type t ON t.oid = x.oid JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace)
)::text`

// patch returns a snapshot that is s with what read describes in place of
// what s held of it: every relation of a covered name, in any schema, and
// every relation of one of oids (which names s's old view of relations
// the read may no longer find: renamed, dropped) or of a relation read,
// is replaced by the relations read. Types read are added or replace
// those of their OIDs. s itself is not changed; the parts of it the
// relations do not touch are shared.
func (s *Snapshot) patch(oids []uint32, read *relationsRead) (*Snapshot, error) {
	covered := make(map[string]bool, len(read.Names))
	for _, n := range read.Names {
		covered[n] = true
	}
	gone := make(map[uint32]bool, len(oids)+len(read.Relations))
	for _, o := range oids {
		gone[o] = true
	}
	rels := make([]Relation, 0, len(read.Relations))
	for _, r := range read.Relations {
		if len(r.Kind) != 1 || len(r.Types) != len(r.Columns) || !covered[r.Name] {
			return nil, fmt.Errorf("malformed relation %s.%s", r.Schema, r.Name)
		}
		rel := Relation{Schema: r.Schema, Name: r.Name, Kind: RelKind(r.Kind[0]), Columns: r.Columns, OID: uint32(r.OID),
			rowType: uint32(r.RowType), arrayType: uint32(r.ArrayType)}
		for _, t := range r.Types {
			rel.ColumnTypes = append(rel.ColumnTypes, uint32(t))
		}
		for _, p := range r.Parents {
			rel.Parents = append(rel.Parents, QualifiedName{p[0], p[1]})
		}
		if rel.Kind == View || rel.Kind == MaterializedView {
			if r.Definition == nil {
				return nil, fmt.Errorf("view %s.%s without a definition", r.Schema, r.Name)
			}
			rel.ViewDefinition, rel.DefinitionSearchPath = *r.Definition, []string{"pg_catalog"}
			for _, d := range r.DependsOn {
				rel.DependsOn = append(rel.DependsOn, uint32(d))
			}
		}
		gone[rel.OID] = true
		rels = append(rels, rel)
	}
	types, err := readTypes(read.Types)
	if err != nil {
		return nil, err
	}

	o := s.withoutRelations(len(rels))
	o.schemas = s.schemas
	cloned := false
	for _, r := range rels {
		if !o.schemas[r.Schema] {
			if !cloned {
				o.schemas, cloned = maps.Clone(s.schemas), true
			}
			o.schemas[r.Schema] = true
		}
	}
	// The row types of the relations replaced go with them, unless read
	// again.
	var dropped []uint32
	for _, r := range s.Relations() {
		if !covered[r.Name] && (r.OID == 0 || !gone[r.OID]) {
			o.addRelation(r)
			continue
		}
		for _, t := range []uint32{r.rowType, r.arrayType} {
			if _, ok := s.types[t]; ok && t != 0 {
				dropped = append(dropped, t)
			}
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "base %s\nnames %q\n", s.version, read.Names)
	for i := range rels {
		r := &rels[i]
		o.addRelation(r)
		fmt.Fprintf(h, "rel %s.%s %c %s %v %v %q %q\n", r.Schema, r.Name, r.Kind,
			strings.Join(r.Columns, ","), r.ColumnTypes, r.Parents, r.ViewDefinition, r.DefinitionSearchPath)
	}
	var changed []Type
	readAgain := make(map[uint32]bool, len(types))
	for _, t := range types {
		readAgain[t.OID] = true
		if old, ok := s.types[t.OID]; !ok || *old != t {
			changed = append(changed, t)
			fmt.Fprintf(h, "type %+v\n", t)
		}
	}
	dropped = slices.DeleteFunc(dropped, func(t uint32) bool { return readAgain[t] })
	fmt.Fprintf(h, "dropped types %v\n", dropped)
	if len(changed) > 0 || len(dropped) > 0 {
		o.types = make(map[uint32]*Type, len(s.types)+len(changed))
		for oid, t := range s.types {
			o.types[oid] = t
		}
		for _, t := range dropped {
			delete(o.types, t)
		}
		for i := range changed {
			o.types[changed[i].OID] = &changed[i]
		}
		o.typeNames = make(map[string][]*Type, len(s.typeNames)+len(changed))
		for _, t := range o.types {
			o.typeNames[t.Name] = append(o.typeNames[t.Name], t)
		}
	}
	o.version = hex.EncodeToString(h.Sum(nil))[:16]
	return o, nil
}

// readTypes decodes the types of a targeted read: OID, schema, name,
// typtype, typcategory.
func readTypes(rows [][5]any) ([]Type, error) {
	out := make([]Type, 0, len(rows))
	for _, row := range rows {
		oid, ok1 := row[0].(float64)
		schema, ok2 := row[1].(string)
		name, ok3 := row[2].(string)
		kind, ok4 := row[3].(string)
		category, ok5 := row[4].(string)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(kind) != 1 || len(category) != 1 {
			return nil, fmt.Errorf("malformed type %v", row)
		}
		out = append(out, Type{OID: uint32(oid), Schema: schema, Name: name, Kind: kind[0], Category: category[0]})
	}
	return out, nil
}

// Source reads the catalogs of one server. Load reads a whole snapshot on
// a connection of its own each time, as Dialer does; LoadRelations reads
// only the relations DDL named, on one connection per database that it
// keeps open between reads, so that a read costs one round trip. Use Load
// and LoadRelations as CacheConfig's Load and LoadRelations, and Close the
// Source when done with it.
type Source struct {
	url  string
	cfg  DialerConfig
	load func(context.Context, string) (*Snapshot, error)

	mu     sync.Mutex
	conns  map[string]*keptConn
	closed bool
}

// keptConn is the connection LoadRelations keeps for one database; mu is
// held while it is in use, and conn is nil until it is opened again after
// a failure.
type keptConn struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// NewSource returns a Source for baseURL (a PostgreSQL URL or keyword/value
// string; the database is replaced by the one asked for) within cfg's
// timeouts, which bound every connect and every read.
func NewSource(baseURL string, cfg DialerConfig) (*Source, error) {
	load, err := NewDialer(baseURL, cfg)
	if err != nil {
		return nil, err
	}
	return &Source{url: baseURL, cfg: cfg.withDefaults(), load: load, conns: map[string]*keptConn{}}, nil
}

// Load reads database's whole catalog on a new connection.
func (s *Source) Load(ctx context.Context, database string) (*Snapshot, error) {
	return s.load(ctx, database)
}

// errSourceClosed is the error of a read after Close.
var errSourceClosed = errors.New("catalog source closed")

// LoadRelations reads again the relations of names, and those base says
// or the server says depend on them (Affected), in one query on database's
// kept connection, and returns base with them replaced. When the kept
// connection fails (the server closed it while idle, say), it tries once
// more on a new one. base must be a complete snapshot of database.
func (s *Source) LoadRelations(ctx context.Context, database string, base *Snapshot, names []string) (*Snapshot, error) {
	if base == nil || !base.Complete {
		return nil, errors.New("read relations: no complete snapshot to start from")
	}
	names, oids := base.Affected(names)
	wide := make([]int64, len(oids))
	for i, o := range oids {
		wide[i] = int64(o)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errSourceClosed
	}
	kc := s.conns[database]
	if kc == nil {
		kc = &keptConn{}
		s.conns[database] = kc
	}
	s.mu.Unlock()
	kc.mu.Lock()
	defer kc.mu.Unlock()
	for retried := false; ; retried = true {
		opened := false
		if kc.conn == nil || kc.conn.IsClosed() {
			cfg, err := connConfig(s.url, database, s.cfg)
			if err != nil {
				return nil, err
			}
			cfg.Database = database
			// View definitions read as Load reads them: every name not in
			// pg_catalog qualified.
			cfg.RuntimeParams["search_path"] = "pg_catalog"
			// The connection runs one query again and again: prepared once,
			// each read is a Bind and Execute, one round trip, on the plan
			// made when it was prepared (planning it for each read's
			// names would cost more than running it). Planner estimates
			// grow with the catalog; JIT compilation would cost more than
			// the whole read.
			cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
			cfg.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
			cfg.RuntimeParams["jit"] = "off"
			if kc.conn, err = connect(ctx, cfg, s.cfg.ConnectTimeout); err != nil {
				kc.conn = nil
				return nil, fmt.Errorf("connect to %s: %w", database, err)
			}
			opened = true
		}
		read, err := s.readRelations(ctx, kc.conn, names, wide)
		if err == nil {
			snap, err := base.patch(oids, read)
			if err != nil {
				return nil, fmt.Errorf("read relations of %s: %w", database, err)
			}
			return snap, nil
		}
		// Whatever failed, the next read starts on a new connection.
		closeConn(ctx, kc.conn)
		kc.conn = nil
		if opened || retried || ctx.Err() != nil {
			return nil, fmt.Errorf("read relations of %s: %w", database, err)
		}
	}
}

// readRelations runs relationsByNameQuery within the statement timeout.
func (s *Source) readRelations(ctx context.Context, conn *pgx.Conn, names []string, oids []int64) (*relationsRead, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatementTimeout+statementGrace)
	defer cancel()
	var raw string
	if err := conn.QueryRow(ctx, relationsByNameQuery, names, oids).Scan(&raw); err != nil {
		return nil, err
	}
	read := &relationsRead{}
	if err := json.Unmarshal([]byte(raw), read); err != nil {
		return nil, err
	}
	return read, nil
}

// Close closes the kept connections, waiting for a read under way on one
// to end; reads after it fail.
func (s *Source) Close() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[string]*keptConn{}
	s.mu.Unlock()
	for _, kc := range conns {
		kc.mu.Lock()
		if kc.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = kc.conn.Close(ctx)
			cancel()
			kc.conn = nil
		}
		kc.mu.Unlock()
	}
}
