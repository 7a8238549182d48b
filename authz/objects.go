package authz

import "strings"

// FunctionPrefix starts the object name of a function: "function:schema.name".
//
// Functions outside pg_catalog and information_schema are denied unless the
// policy allows act "execute" on them. The object is the function's
// qualified name behind this prefix, so the same g2 and p machinery serves
// columns and functions, and the prefix keeps the two apart at a glance:
//
//	g2, function:public.unaccent, text_functions
//	p, customer_service, customer_support, text_functions, execute, allow
//	p, sales, *, function:crm.format_*, execute, allow
//
// A function pattern has two dot-separated parts, a column pattern three, so
// neither can ever match the other.
const FunctionPrefix = "function:"

// ExtensionPrefix starts the object name of an extension:
// "extension:hstore". An extension the policy allows act "execute" on, for a
// subject and purpose, is trusted: the functions and operators it installs
// count as known, as the built-ins do.
//
//	g2, extension:hstore, trusted_extensions
//	p, sales, *, trusted_extensions, execute, allow
const ExtensionPrefix = "extension:"

// ObjectDDL is the one object of act "ddl": the right to attach code to the
// database (CREATE FUNCTION, TRIGGER, CAST, TYPE, ...).
//
//	p, dba, *, ddl, ddl, allow
const ObjectDDL = "ddl"

// objKind classifies a g2 left side or a p object.
type objKind int

const (
	objInvalid   objKind = iota
	objCategory          // a plain name: customer_contact
	objColumn            // schema.table.column, parts may hold '*'
	objFunction          // function:schema.name, parts may hold '*'
	objExtension         // extension:name, the name may hold '*'
	objDDL               // ddl
)

// objectKind tells what a g2 left side or p object is, and when it is
// nothing valid, why.
func objectKind(s string) (objKind, string) {
	if s == "" {
		return objInvalid, "empty"
	}
	if strings.ContainsAny(s, " \t") {
		return objInvalid, "contains white space"
	}
	if s == ObjectDDL {
		return objDDL, ""
	}
	if rest, ok := strings.CutPrefix(s, ExtensionPrefix); ok {
		if dottedParts(rest) != 1 {
			return objInvalid, "an extension is extension:name"
		}
		return objExtension, ""
	}
	if rest, ok := strings.CutPrefix(s, FunctionPrefix); ok {
		if dottedParts(rest) != 2 {
			return objInvalid, "a function is function:schema.name"
		}
		return objFunction, ""
	}
	if strings.Contains(s, ":") {
		return objInvalid, "':' is only allowed in the function: and extension: prefixes"
	}
	switch n := dottedParts(s); {
	case n == 1 && !isPattern(s):
		return objCategory, ""
	case n == 1:
		return objInvalid, "a category cannot hold '*'; a column pattern is schema.table.column"
	case n == 3:
		return objColumn, ""
	case n < 0:
		return objInvalid, "empty part between dots"
	default:
		return objInvalid, "a column pattern has exactly three parts, schema.table.column"
	}
}

// dottedParts counts the '.'-separated parts of s, or -1 if one is empty.
func dottedParts(s string) int {
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" {
			return -1
		}
	}
	return len(parts)
}
