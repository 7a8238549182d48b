package sqlscan

import (
	"strings"

	"github.com/pgguard/pgguard/catalog"
)

// This file is the one place that lists what the analysis refuses because
// a column policy cannot describe it. Each entry says why.
//
// Functions are matched by name in any schema: the built-in ones live in
// pg_catalog, the extension ones (dblink, pageinspect, ...) wherever the
// extension was installed, and a user function of the same name is
// refused too rather than guessed apart.

// unsafeEntry is one refused function or family of functions.
type unsafeEntry struct {
	reason string
	// deny decides by argument count; nil denies every form.
	deny func(nargs int) bool
}

const (
	runsSQL      = "runs SQL text or reads a relation by name, which the analysis cannot see into"
	readsFiles   = "reads or writes files on the database server"
	largeObjects = "reads or writes large objects, which no column policy covers"
	readsWAL     = "reads the write-ahead log, which holds every changed row"
	otherSession = "exposes other sessions' statements or client addresses"
	statValues   = "exposes column values kept in planner statistics"
	rawPages     = "reads raw table or index pages, bypassing column access"
	changesGUC   = "changes settings; only SELECT set_config(constant, constant, constant) is followed"
	tupleByTID   = "reads or changes rows by physical address"
)

// unsafeFunctions are refused by exact name.
var unsafeFunctions = map[string]unsafeEntry{
	// SQL text or a relation given by name.
	"query_to_xml":                            {runsSQL, nil},
	"query_to_xmlschema":                      {runsSQL, nil},
	"query_to_xml_and_xmlschema":              {runsSQL, nil},
	"table_to_xml":                            {runsSQL, nil},
	"table_to_xmlschema":                      {runsSQL, nil},
	"table_to_xml_and_xmlschema":              {runsSQL, nil},
	"cursor_to_xml":                           {runsSQL, nil},
	"cursor_to_xmlschema":                     {runsSQL, nil},
	"schema_to_xml":                           {runsSQL, nil},
	"schema_to_xmlschema":                     {runsSQL, nil},
	"schema_to_xml_and_xmlschema":             {runsSQL, nil},
	"database_to_xml":                         {runsSQL, nil},
	"database_to_xmlschema":                   {runsSQL, nil},
	"database_to_xml_and_xmlschema":           {runsSQL, nil},
	"ts_stat":                                 {runsSQL, nil},
	"ts_rewrite":                              {runsSQL, func(n int) bool { return n != 3 }}, // ts_rewrite(query, select_text)
	"crosstab":                                {runsSQL, nil},                                // tablefunc
	"crosstab2":                               {runsSQL, nil},
	"crosstab3":                               {runsSQL, nil},
	"crosstab4":                               {runsSQL, nil},
	"connectby":                               {runsSQL, nil},
	"xpath_table":                             {runsSQL, nil}, // xml2
	"xslt_process":                            {readsFiles, nil},
	"pg_read_file":                            {readsFiles, nil},
	"pg_read_binary_file":                     {readsFiles, nil},
	"pg_stat_file":                            {readsFiles, nil},
	"pg_ls_dir":                               {readsFiles, nil},
	"pg_logdir_ls":                            {readsFiles, nil}, // adminpack
	"pg_file_write":                           {readsFiles, nil},
	"pg_file_read":                            {readsFiles, nil},
	"pg_file_rename":                          {readsFiles, nil},
	"pg_file_unlink":                          {readsFiles, nil},
	"pg_file_sync":                            {readsFiles, nil},
	"loread":                                  {largeObjects, nil},
	"lowrite":                                 {largeObjects, nil},
	"pg_logical_slot_get_changes":             {readsWAL, nil},
	"pg_logical_slot_peek_changes":            {readsWAL, nil},
	"pg_logical_slot_get_binary_changes":      {readsWAL, nil},
	"pg_logical_slot_peek_binary_changes":     {readsWAL, nil},
	"pg_get_wal_record_info":                  {readsWAL, nil}, // pg_walinspect
	"pg_get_wal_records_info":                 {readsWAL, nil},
	"pg_get_wal_records_info_till_end_of_wal": {readsWAL, nil},
	"pg_get_wal_block_info":                   {readsWAL, nil},
	"pg_get_wal_stats":                        {readsWAL, nil},
	"pg_get_wal_stats_till_end_of_wal":        {readsWAL, nil},
	"pg_stat_get_activity":                    {otherSession, nil},
	"pg_stat_get_backend_activity":            {otherSession, nil},
	"pg_stat_get_backend_client_addr":         {otherSession, nil},
	"pg_stat_statements":                      {otherSession, nil},
	"pg_stat_statements_info":                 {otherSession, nil},
	"pg_mcv_list_items":                       {statValues, nil},
	"get_raw_page":                            {rawPages, nil}, // pageinspect
	"heap_page_items":                         {rawPages, nil},
	"heap_page_item_attrs":                    {rawPages, nil},
	"tuple_data_split":                        {rawPages, nil},
	"bt_page_items":                           {rawPages, nil},
	"bt_multi_page_stats":                     {rawPages, nil},
	"brin_page_items":                         {rawPages, nil},
	"gin_leafpage_items":                      {rawPages, nil},
	"hash_page_items":                         {rawPages, nil},
	"gist_page_items":                         {rawPages, nil},
	"gist_page_items_bytea":                   {rawPages, nil},
	"currtid":                                 {tupleByTID, nil},
	"currtid2":                                {tupleByTID, nil},
	"heap_force_kill":                         {tupleByTID, nil}, // pg_surgery
	"heap_force_freeze":                       {tupleByTID, nil},
	"set_config":                              {changesGUC, nil},
}

// unsafePrefixes are refused by name prefix: whole families.
var unsafePrefixes = []struct {
	prefix string
	reason string
}{
	{"dblink", runsSQL},    // dblink, dblink_exec, dblink_open, ...: SQL on another connection
	{"pg_ls_", readsFiles}, // pg_ls_logdir, pg_ls_waldir, pg_ls_tmpdir, ...
	{"lo_", largeObjects},  // lo_import, lo_export, lo_get, lo_put, lo_open, lo_from_bytea, ...
}

// unsafeFunction reports whether a function name is refused and why.
func unsafeFunction(name string, nargs int) (string, bool) {
	if e, ok := unsafeFunctions[name]; ok && (e.deny == nil || e.deny(nargs)) {
		return e.reason, true
	}
	for _, p := range unsafePrefixes {
		if strings.HasPrefix(name, p.prefix) {
			return p.reason, true
		}
	}
	return "", false
}

// sensitiveRelation is a catalog that exposes what no column policy
// covers. columns nil means the whole relation; otherwise only reading
// those columns is refused (pg_roles reads pg_authid, but never its
// password column).
type sensitiveRelation struct {
	reason  string
	columns []string
}

const (
	statsReason    = "holds samples of column values (planner statistics)"
	sessionsReason = "shows other sessions' statements and clients"
	secretReason   = "holds credentials"
	loReason       = "holds large object contents, which no column policy covers"
)

// sensitiveRelations are keyed by schema.name; the schema "*" matches
// extension relations installed in any schema.
var sensitiveRelations = map[string]sensitiveRelation{
	"pg_catalog.pg_statistic":          {statsReason, nil},
	"pg_catalog.pg_stats":              {statsReason, nil},
	"pg_catalog.pg_statistic_ext_data": {statsReason, nil},
	"pg_catalog.pg_stats_ext":          {statsReason, nil},
	"pg_catalog.pg_stats_ext_exprs":    {statsReason, nil},
	"pg_catalog.pg_stat_activity": {sessionsReason, []string{"query", "query_id", "client_addr", "client_hostname",
		"client_port", "application_name"}},
	"*.pg_stat_statements":                    {sessionsReason, nil},
	"*.pg_stat_statements_info":               {sessionsReason, nil},
	"pg_catalog.pg_largeobject":               {loReason, nil},
	"pg_catalog.pg_authid":                    {secretReason, []string{"rolpassword"}},
	"pg_catalog.pg_shadow":                    {secretReason, []string{"passwd"}},
	"pg_catalog.pg_user_mapping":              {secretReason, []string{"umoptions"}},
	"pg_catalog.pg_user_mappings":             {secretReason, []string{"umoptions"}},
	"information_schema._pg_user_mappings":    {secretReason, []string{"umoptions"}},
	"information_schema.user_mapping_options": {secretReason, []string{"option_value"}},
	"pg_catalog.pg_subscription":              {secretReason, []string{"subconninfo"}},
}

// sessionViews are pg_catalog views whose definitions read
// pg_stat_get_activity, refused as a whole for its statement and client
// address columns, while the views themselves show neither: each session's
// TLS (pg_stat_ssl) or GSSAPI (pg_stat_gssapi) state. They are read as
// relations of their own, every column reported as itself, so a policy can
// still classify them (a client certificate's subject names a person).
// pg_catalog is trusted like its functions: only a superuser with
// allow_system_table_mods could redefine them.
var sessionViews = map[string]bool{
	"pg_catalog.pg_stat_ssl":    true,
	"pg_catalog.pg_stat_gssapi": true,
}

// readAsStored reports whether a view is read like a stored relation, its
// definition not expanded.
func readAsStored(cr *catalog.Relation) bool {
	return cr.Kind == catalog.View && sessionViews[cr.Schema+"."+cr.Name]
}

func lookupSensitive(schema, name string) (sensitiveRelation, bool) {
	if s, ok := sensitiveRelations[schema+"."+name]; ok {
		return s, true
	}
	s, ok := sensitiveRelations["*."+name]
	return s, ok
}

// checkSensitiveRelation denies using a relation that is sensitive as a
// whole, and reports whether it did.
func (a *analyzer) checkSensitiveRelation(schema, name string) bool {
	s, ok := lookupSensitive(schema, name)
	if !ok || s.columns != nil {
		return false
	}
	a.deny(CodeSensitiveCatalog, "%s.%s %s", schema, name, s.reason)
	return true
}

// checkSensitiveColumns denies a statement whose accesses, view lineage
// included, touch a sensitive column.
func (a *analyzer) checkSensitiveColumns(accs []Access) {
	for _, x := range accs {
		s, ok := lookupSensitive(x.Schema, x.Table)
		if !ok {
			continue
		}
		for _, c := range s.columns {
			if c == x.Column {
				a.deny(CodeSensitiveCatalog, "%s.%s.%s %s", x.Schema, x.Table, x.Column, s.reason)
				return
			}
		}
	}
}
