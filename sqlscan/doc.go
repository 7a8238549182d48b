// Package sqlscan answers the one question pgguard's verdicts rest on: which
// columns of which tables can this statement read or write?
//
// # Model
//
// Analyze parses the text with PostgreSQL's own parser (pg_query) and walks
// each statement the way PostgreSQL's parse analysis resolves names: range
// entries per query level, aliases, CTEs shadowing relations, LATERAL
// visibility, correlated sub-queries, USING/NATURAL joins, output-column
// names in ORDER BY and GROUP BY, functional notation (email(t) is t.email)
// and whole-row references. Relation names resolve through the catalog
// snapshot and the session's search_path (pg_catalog first unless listed,
// "$user" as Context.User).
//
// A column is read wherever the statement can learn anything of its values:
// select lists, *, whole rows (t, t.*, ROW(t.*), row_to_json(t), t::text,
// record comparisons), WHERE, JOIN, GROUP BY, HAVING, windows, DISTINCT ON,
// ORDER BY, LIMIT, RETURNING, sub-queries of every kind, CTEs, set
// operations, VALUES, COPY ... TO and the source side of INSERT, UPDATE and
// MERGE (EXCLUDED.c reads what the source put into c). A column is written as
// the target of INSERT (listed columns, or all), UPDATE SET, MERGE actions
// and COPY ... FROM; DELETE and TRUNCATE write every column. Reading a
// partition or inheritance child's column also counts as reading the same
// column of each parent, recursively, so a policy on a parent covers its
// children; reading a table without ONLY counts its partitions' and
// inheritance children's columns too.
//
// Every select-list item of a query the client wrote counts, even in a
// sub-query whose output the outer query ignores: an ignored item can still
// leak through an error (1/(...)) or a row count. Views are different: the
// database owner wrote them, so a view's definition is expanded (recursively,
// up to a depth limit) into lineage, and a view column used by the statement
// counts as the view's own column plus every stored column its definition
// computes it from (clause view:schema.view). What the view's definition
// reads regardless of the columns used (its WHERE, joins, grouping) always
// counts; under DISTINCT or a set operation every output counts.
//
// # Fail closed
//
// Whatever cannot be analysed with certainty carries a Denial, and the proxy
// refuses the statement:
//
//   - text that does not parse, is not UTF-8 or holds a NUL byte;
//   - DO blocks and CALL, whose code the analysis cannot see;
//   - functions outside pg_catalog and information_schema unless
//     Context.FunctionAllowed allows them (including through user-defined
//     operators and functional notation), and, with a complete snapshot,
//     functions the catalog does not know;
//   - the built-ins listed in unsafe.go: those that run SQL text or read a
//     relation by name, read files, large objects, logs or the WAL, raw
//     pages, planner statistics or other sessions' statements, and
//     set_config outside the one form followed as an effect;
//   - the catalogs listed in unsafe.go that expose column values
//     (statistics), other sessions' statements, large objects or
//     credentials;
//   - relations the catalog does not know (unknown_relation: the proxy
//     refreshes its snapshot and retries once) and references to columns
//     that exist in no FROM item (unknown_column: PostgreSQL would fail the
//     statement; refusing it is the safe reading of a stale catalog);
//   - COPY to or from a program or a server-side file, TRUNCATE ... CASCADE,
//     CREATE RULE, LOAD, cross-database names, conflicting or malformed
//     purpose comments;
//   - statements beyond the analysis budget (node count, view nesting), and
//     texts longer or with more tokens than Context.Limits allow
//     (too_large), which are refused before the parser sees them.
//
// When the search path is unknown (Context.SearchPath nil), or a schema on
// it before the match is missing from the snapshot, an unqualified name
// counts against every relation of that name in any schema. A temporary
// table created earlier in the same input counts together with the relation
// the name would otherwise resolve to: which of them the server uses cannot
// be known. The analysis cannot see other sessions' or earlier inputs'
// temporary tables; a name that resolves to none in the catalog is denied.
// Within one input, SET search_path, set_config('search_path', ...) and SET
// ROLE (which changes what "$user" means) apply to the statements after
// them; RESET, DISCARD ALL, or a transaction end after such a change make
// the path unknown for the rest of the input. Across inputs the proxy
// follows the Effects and passes the result in Context.
//
// # Known limits
//
// The analysis trusts the schema the catalog describes: code the database
// owner attached to it runs without being seen here — triggers (INSTEAD OF
// triggers on views too), rules, row-level security policies, column
// defaults and generated columns, domain checks, and casts to user-defined
// types. DDL sent through the proxy has its function calls checked, so a
// client cannot attach a disallowed function that way. A
// statement that reads no column, such as SELECT count(*) FROM t, has no
// accesses. Sequences are not in the catalog, so selecting from one is
// unknown_relation.
//
// # Lexical safety
//
// pg_query reads text as UTF-8 with standard_conforming_strings on. The
// server reads it in the session's client_encoding and string mode; where
// the two could split tokens differently, a string could end where pg_query
// thinks a name goes on. CheckLexical refuses those cases: it must be called
// with the session's settings before Analyze's verdict is trusted. See
// CheckLexical for the rules.
//
// # Purpose comments
//
// A statement may declare its purpose in a sqlcommenter comment,
// /*purpose='NAME'*/, possibly among other keys (/*action='x',purpose='y'*/),
// with URL-encoded values. Comments are found with PostgreSQL's scanner, so a
// look-alike inside a string literal does not count. Each statement gets the
// purpose from comments in its own span.
//
// # Concurrency
//
// Analyze is pure: no I/O, no state that outlives a call; it is safe for
// concurrent use with a shared Snapshot.
package sqlscan
