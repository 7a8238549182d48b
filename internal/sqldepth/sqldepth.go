// Package sqldepth bounds how deeply a statement nests before any code that
// recurses over its parse tree sees it.
//
// pg_query's parser output, normalizer and fingerprinter walk the parse
// tree recursively in C, on whatever stack the calling thread has. A
// statement nested deeply enough (`SELECT 1+1+...+1` with some 20,000
// terms, about 45 KB) overflows that stack, and a stack overflow in C ends
// the whole process, not one session. PostgreSQL itself refuses such a
// statement with 54001 (stack depth limit exceeded); pgguard refuses it the
// same way, earlier, from the token stream of PostgreSQL's own scanner,
// which does not recurse.
package sqldepth

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

// MaxLimit is the deepest nesting, in the units Estimate counts, that
// pgguard hands to the parser. A unit is at least one tree level; on the
// usual 8 MiB stack the parser and its walkers stand some 20,000 before they
// fail, so the limit leaves a wide margin, and statements written by people
// or ORMs stay far below it. A smaller stack lowers it (see Limit).
const MaxLimit = 1000

// Limit is the deepest nesting pgguard hands to the parser on this
// process's stacks: MaxLimit, or less where threads have less than about
// 1.6 MiB of stack (ulimit -s, or a C library with small default thread
// stacks), so that a statement let through can never overflow one.
func Limit() int {
	_, limit := Stack()
	return limit
}

// minBytesPerUnit: every unit Estimate counts needs at least one byte of
// text, so a text shorter than Limit cannot exceed it and is not scanned.
const minBytesPerUnit = 1

// TooDeep reports whether sql may nest deeper than Limit, or cannot be
// scanned at all; either way it must not reach the parser.
func TooDeep(sql string) bool {
	limit := Limit()
	if len(sql) < limit*minBytesPerUnit {
		return false
	}
	d, ok := Estimate(sql)
	return !ok || d > limit
}

// Estimate returns an upper bound, in units of roughly one parse tree level,
// on how deeply sql nests; ok is false when PostgreSQL's scanner rejects
// the text.
//
// Brackets of every kind and CASE ... END open a level. Within a level,
// every token that is not a name, a constant or a separator may be the
// parent of what follows (operators, casts, NOT, IS, IN, LIKE, ...), and
// counts. A comma, AND or OR ends a sibling, and so do WHEN, THEN and ELSE
// directly inside a CASE: what follows it is not below
// what came before (PostgreSQL's grammar flattens AND and OR chains, and
// list items are siblings). UNION, INTERSECT, EXCEPT and JOIN build
// left-deep trees across commas and ANDs, so they count apart and only the
// end of the level or statement resets them.
func Estimate(sql string) (depth int, ok bool) {
	res, err := pg.Scan(sql)
	if err != nil {
		return 0, false
	}
	var levels []level
	cur := level{}
	total := 0 // sum over enclosing levels of their weight
	for _, t := range res.GetTokens() {
		switch t.GetToken() {
		case pg.Token_ASCII_40, pg.Token_ASCII_91, pg.Token_CASE: // ( [ CASE
			levels = append(levels, cur)
			total += cur.weight()
			cur = level{open: t.GetToken()}
			depth = max(depth, total+cur.weight())
			continue
		case pg.Token_ASCII_41, pg.Token_ASCII_93, pg.Token_END_P: // ) ] END
			// A closer that does not match the level's opener (END used as
			// a name, a stray bracket) closes nothing: the estimate can
			// only grow from it.
			if len(levels) > 0 && closes[cur.open] == t.GetToken() {
				cur = levels[len(levels)-1]
				levels = levels[:len(levels)-1]
				total -= cur.weight()
				continue
			}
		case pg.Token_ASCII_59: // ;
			levels, cur, total = levels[:0], level{}, 0
			continue
		case pg.Token_ASCII_44, pg.Token_AND, pg.Token_OR: // , AND OR
			cur.ops = 0
			continue
		case pg.Token_WHEN, pg.Token_THEN, pg.Token_ELSE:
			if cur.open == pg.Token_CASE { // the parts of a CASE are siblings
				cur.ops = 0
				continue
			}
			cur.ops++
		case pg.Token_UNION, pg.Token_INTERSECT, pg.Token_EXCEPT, pg.Token_JOIN:
			cur.chain++
		case pg.Token_IDENT, pg.Token_UIDENT, pg.Token_SCONST, pg.Token_USCONST,
			pg.Token_BCONST, pg.Token_XCONST, pg.Token_ICONST, pg.Token_FCONST,
			pg.Token_PARAM, pg.Token_SQL_COMMENT, pg.Token_C_COMMENT, pg.Token_ASCII_46: // names, constants, comments, .
		default:
			cur.ops++
		}
		if d := total + cur.weight(); d > depth {
			depth = d
		}
	}
	return depth, true
}

// closes maps a level's opening token to the token that closes it.
var closes = map[pg.Token]pg.Token{
	pg.Token_ASCII_40: pg.Token_ASCII_41,
	pg.Token_ASCII_91: pg.Token_ASCII_93,
	pg.Token_CASE:     pg.Token_END_P,
}

// level is one bracket (or CASE) nesting level.
type level struct {
	open  pg.Token // what opened it; 0 for the statement's own level
	ops   int      // tokens since the last sibling boundary that may nest
	chain int      // set operations and joins in this level
}

func (l level) weight() int { return 1 + l.ops + l.chain }
