package pgtree

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// differ decodes buf with the generated decoder alone and with
// proto.Unmarshal and reports how they differ: "" when both give equal
// trees.
func differ(buf []byte) string {
	want := &pg.ParseResult{}
	if err := proto.Unmarshal(buf, want); err != nil {
		// Invalid UTF-8 in a string constant, say: pg_query.Parse fails,
		// and so must the generated decoder.
		if _, err := decodeFast(buf); err == nil {
			return "the generated decoder accepted what proto.Unmarshal refuses"
		}
		return ""
	}
	got, err := decodeFast(buf)
	if err != nil {
		return "generated decoder: " + err.Error()
	}
	if !proto.Equal(got, want) {
		return "trees differ"
	}
	return ""
}

// corpus gathers SQL texts from the repository: the analysis's golden
// cases, every string literal in the sqlscan, guard, catalog and grants
// tests (which includes the guard's fuzz seeds), the guard's fuzz corpus,
// the view definitions of PostgreSQL 15's catalog and the SQL files of the
// catalog tests and the demo.
func corpus(t testing.TB) []string {
	var out []string
	cases, _ := filepath.Glob("../../sqlscan/testdata/cases/*.txt")
	for _, path := range cases {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range strings.Split(string(b), "-- name:") {
			sql, _, _ := strings.Cut(block, "-- expect:")
			if _, rest, ok := strings.Cut(sql, "\n"); ok {
				out = append(out, rest)
			}
		}
	}
	for _, dir := range []string{"sqlscan", "guard", "catalog", "grants", "cmd/pgguard"} {
		files, _ := filepath.Glob("../../" + dir + "/*_test.go")
		for _, path := range files {
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && len(s) > 3 {
						out = append(out, s)
					}
				}
				return true
			})
		}
	}
	seeds, _ := filepath.Glob("../../guard/testdata/fuzz/*/*")
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "string("); ok {
				if s, err := strconv.Unquote(strings.TrimSuffix(v, ")")); err == nil {
					out = append(out, s)
				}
			}
		}
	}
	var rels []struct{ View string }
	b, err := os.ReadFile("../../sqlscan/testdata/pg15_relations.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rels); err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		if r.View != "" {
			out = append(out, r.View)
		}
	}
	files, _ := filepath.Glob("../../catalog/testdata/*.sql")
	demo, _ := filepath.Glob("../../demo/*.sql")
	for _, path := range append(files, demo...) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
		// Files with psql commands do not parse whole; their statements do.
		out = append(out, strings.Split(string(b), ";")...)
	}
	return out
}

// TestCorpusDecodesAsProtoUnmarshal requires the generated decoder, with
// no fallback, to give exactly proto.Unmarshal's tree for every text of
// the corpus that parses.
func TestCorpusDecodesAsProtoUnmarshal(t *testing.T) {
	texts := corpus(t)
	parsed := 0
	for _, sql := range texts {
		buf, err := pgparser.ParseToProtobuf(sql)
		if err != nil {
			continue
		}
		parsed++
		if d := differ(buf); d != "" {
			t.Errorf("%s\n--- sql\n%s", d, sql)
		}
	}
	// The corpus is the repository's: if it shrinks this far, the test no
	// longer tests much.
	if parsed < 1000 {
		t.Fatalf("only %d of %d corpus texts parse", parsed, len(texts))
	}
	t.Logf("%d of %d corpus texts parsed and decoded alike", parsed, len(texts))
}

// FuzzDecode: any text that parses decodes as proto.Unmarshal decodes it.
func FuzzDecode(f *testing.F) {
	for _, sql := range corpus(f) {
		f.Add(sql)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		buf, err := pgparser.ParseToProtobuf(sql)
		if err != nil {
			return
		}
		if d := differ(buf); d != "" {
			t.Fatalf("%s\n--- sql\n%s", d, sql)
		}
	})
}

// TestEveryField fills every field of every message type the decoder
// knows, each oneof member in turn, encodes the message with
// proto.Marshal and requires the generated decoder to give it back: a
// field it skipped or misread would show as a difference. The corpus
// reaches only what the parser emits for the texts in it; this reaches
// every field.
func TestEveryField(t *testing.T) {
	types := reachable((&pg.ParseResult{}).ProtoReflect().Descriptor())
	if len(types) < 250 {
		t.Fatalf("only %d message types reachable from ParseResult", len(types))
	}
	checked := 0
	for _, md := range types {
		variants := []protoreflect.FieldDescriptor{nil}
		for i := 0; i < md.Oneofs().Len(); i++ {
			fields := md.Oneofs().Get(i).Fields()
			for j := 0; j < fields.Len(); j++ {
				variants = append(variants, fields.Get(j))
			}
		}
		for _, member := range variants {
			msg := newMessage(t, md)
			fill(msg, member, 2)
			// Wrapped as a statement so that ParseResult is the root.
			tree := wrap(t, msg)
			buf, err := proto.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeFast(buf)
			if err != nil {
				t.Errorf("%s (oneof member %v): %v", md.FullName(), name(member), err)
				continue
			}
			if !proto.Equal(got, tree) {
				t.Errorf("%s (oneof member %v): decoded differently", md.FullName(), name(member))
			}
			checked++
		}
	}
	t.Logf("%d message types, %d filled variants", len(types), checked)
}

func name(f protoreflect.FieldDescriptor) string {
	if f == nil {
		return "none"
	}
	return string(f.Name())
}

func reachable(root protoreflect.MessageDescriptor) []protoreflect.MessageDescriptor {
	seen := map[protoreflect.FullName]bool{}
	var out []protoreflect.MessageDescriptor
	queue := []protoreflect.MessageDescriptor{root}
	for len(queue) > 0 {
		md := queue[0]
		queue = queue[1:]
		if seen[md.FullName()] {
			continue
		}
		seen[md.FullName()] = true
		out = append(out, md)
		for i := 0; i < md.Fields().Len(); i++ {
			if f := md.Fields().Get(i); f.Kind() == protoreflect.MessageKind {
				queue = append(queue, f.Message())
			}
		}
	}
	return out
}

func newMessage(t *testing.T, md protoreflect.MessageDescriptor) protoreflect.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New()
}

// fill sets every field of m to a value that is not the default; of each
// oneof it sets member (or, when member is another oneof's, the first).
// Messages nest depth levels deep.
func fill(m protoreflect.Message, member protoreflect.FieldDescriptor, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if o := f.ContainingOneof(); o != nil {
			want := o.Fields().Get(0)
			if member != nil && member.ContainingOneof() == o {
				want = member
			}
			if f != want {
				continue
			}
		}
		if f.Kind() == protoreflect.MessageKind && depth == 0 {
			continue
		}
		if f.IsList() {
			list := m.Mutable(f).List()
			for k := 0; k < 2; k++ {
				if f.Kind() == protoreflect.MessageKind {
					e := list.NewElement()
					fill(e.Message(), nil, depth-1)
					list.Append(e)
				} else {
					list.Append(scalar(f, k))
				}
			}
			continue
		}
		if f.Kind() == protoreflect.MessageKind {
			sub := m.Mutable(f).Message()
			fill(sub, nil, depth-1)
			continue
		}
		m.Set(f, scalar(f, int(f.Number())))
	}
}

// scalar is a value of f's kind that is not the default and differs with
// k; integers are negative where the kind allows, to test sign extension.
func scalar(f protoreflect.FieldDescriptor, k int) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(-int32(k) - 1000)
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(uint32(k) + 1<<31)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(-int64(k) - 1<<40)
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(uint64(k) + 1<<63)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(k%3 + 1))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(k) + 0.25)
	case protoreflect.StringKind:
		s := string(f.Name()) + "·" + strconv.Itoa(k)
		if k%2 == 1 {
			// Long enough to get memory of its own.
			s += strings.Repeat("x", strBlock)
		}
		return protoreflect.ValueOfString(s)
	}
	panic("no value for kind " + f.Kind().String())
}

// wrap makes m part of a ParseResult: as the tree itself, as a statement
// (a Node member) or, for the few messages no Node member holds, inside
// the first message found to hold one.
func wrap(t *testing.T, m protoreflect.Message) *pg.ParseResult {
	switch x := m.Interface().(type) {
	case *pg.ParseResult:
		return x
	case *pg.RawStmt:
		return &pg.ParseResult{Version: 1, Stmts: []*pg.RawStmt{x}}
	case *pg.Node:
		return &pg.ParseResult{Stmts: []*pg.RawStmt{{Stmt: x}}}
	}
	node := &pg.Node{}
	nd := node.ProtoReflect().Descriptor()
	for i := 0; i < nd.Fields().Len(); i++ {
		if f := nd.Fields().Get(i); f.Message().FullName() == m.Descriptor().FullName() {
			node.ProtoReflect().Set(f, protoreflect.ValueOfMessage(m))
			return &pg.ParseResult{Stmts: []*pg.RawStmt{{Stmt: node}}}
		}
	}
	// Not a node: put it into a message that has a field of its type,
	// itself wrapped.
	for _, md := range reachable((&pg.ParseResult{}).ProtoReflect().Descriptor()) {
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			if f.Kind() != protoreflect.MessageKind || f.Message().FullName() != m.Descriptor().FullName() {
				continue
			}
			holder := newMessage(t, md)
			if f.IsList() {
				holder.Mutable(f).List().Append(protoreflect.ValueOfMessage(m))
			} else {
				holder.Set(f, protoreflect.ValueOfMessage(m))
			}
			return wrap(t, holder)
		}
	}
	t.Fatalf("%s: no message holds it", m.Descriptor().FullName())
	return nil
}

// TestFallback: what the generated code does not expect is decoded by
// proto.Unmarshal, never skipped: unknown fields and wire types, a
// singular message field sent twice (merged), invalid UTF-8 and broken
// encodings (errors either way).
func TestFallback(t *testing.T) {
	buf, err := pgparser.ParseToProtobuf("SELECT email FROM crm.customers WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	unknown := protowire.AppendTag(append([]byte(nil), buf...), 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	wrongWire := protowire.AppendTag(append([]byte(nil), buf...), 1, protowire.BytesType) // version as bytes
	wrongWire = protowire.AppendBytes(wrongWire, []byte("x"))
	// A second RawStmt whose stmt is a Node with two oneof members set.
	node := protowire.AppendTag(nil, 1, protowire.BytesType) // alias
	node = protowire.AppendBytes(node, nil)
	node = protowire.AppendTag(node, 2, protowire.BytesType) // range_var
	node = protowire.AppendBytes(node, nil)
	rs := protowire.AppendTag(nil, 1, protowire.BytesType)
	rs = protowire.AppendBytes(rs, node)
	twoMembers := protowire.AppendTag(append([]byte(nil), buf...), 2, protowire.BytesType)
	twoMembers = protowire.AppendBytes(twoMembers, rs)
	// A RawStmt with its stmt twice: proto.Unmarshal merges the two.
	alias := protowire.AppendTag(nil, 1, protowire.BytesType) // Alias.aliasname
	alias = protowire.AppendBytes(alias, []byte("a"))
	n1 := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), alias)
	rs2 := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), n1)
	rs2 = protowire.AppendTag(rs2, 2, protowire.VarintType) // stmt_location
	rs2 = protowire.AppendVarint(rs2, 3)
	rs2 = protowire.AppendBytes(protowire.AppendTag(rs2, 1, protowire.BytesType), n1)
	merged := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), rs2)
	badUTF8 := protowire.AppendTag(nil, 1, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff})
	badUTF8 = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), badUTF8)
	badUTF8 = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), badUTF8)
	badUTF8 = protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), badUTF8)

	for _, c := range []struct {
		name    string
		buf     []byte
		wantErr bool // proto.Unmarshal, and so Decode, fails
	}{
		{"as produced", buf, false},
		{"unknown field", unknown, false},
		{"known field, wrong wire type", wrongWire, false},
		{"two oneof members", twoMembers, false},
		{"singular message twice", merged, false},
		{"invalid UTF-8", badUTF8, true},
		{"truncated", buf[:len(buf)-1], true},
		{"tag only", []byte{0x0a}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := &pg.ParseResult{}
			wantErr := proto.Unmarshal(c.buf, want)
			if (wantErr != nil) != c.wantErr {
				t.Fatalf("proto.Unmarshal: %v, want an error: %v", wantErr, c.wantErr)
			}
			_, fastErr := decodeFast(c.buf)
			if c.name != "as produced" && fastErr == nil {
				t.Errorf("the generated decoder accepted it")
			}
			got, err := Decode(c.buf)
			if (err != nil) != c.wantErr {
				t.Fatalf("Decode: %v, want an error: %v", err, c.wantErr)
			}
			if err == nil && !proto.Equal(got, want) {
				t.Errorf("Decode differs from proto.Unmarshal")
			}
		})
	}
}

// TestDepth: a tree nested deeper than the generated decoder goes is
// left to proto.Unmarshal, whose result Decode returns.
func TestDepth(t *testing.T) {
	for _, levels := range []int{maxDepth / 4, maxDepth} {
		// Node -> A_Expr (field lexpr) -> Node ..., built inside out: two
		// messages a level.
		lexpr := (&pg.A_Expr{}).ProtoReflect().Descriptor().Fields().ByName("lexpr").Number()
		member := (&pg.Node{}).ProtoReflect().Descriptor().Fields().ByName("a_expr").Number()
		var b []byte
		for i := 0; i < levels; i++ {
			aexpr := protowire.AppendBytes(protowire.AppendTag(nil, lexpr, protowire.BytesType), b)
			b = protowire.AppendBytes(protowire.AppendTag(nil, member, protowire.BytesType), aexpr)
		}
		rs := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
		buf := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), rs)
		want := &pg.ParseResult{}
		wantErr := proto.Unmarshal(buf, want)
		_, fastErr := decodeFast(buf)
		if deep := levels == maxDepth; deep != (fastErr != nil) {
			t.Errorf("%d levels: generated decoder's error %v", levels, fastErr)
		}
		got, err := Decode(buf)
		if (err != nil) != (wantErr != nil) || (err == nil && !proto.Equal(got, want)) {
			t.Errorf("%d levels: Decode (error %v) differs from proto.Unmarshal (error %v)", levels, err, wantErr)
		}
	}
}

// TestParse: Parse gives pg_query.Parse's tree and its syntax errors.
func TestParse(t *testing.T) {
	for _, sql := range []string{
		"SELECT id, email, phone FROM crm.customers WHERE id = $1",
		"UPDATE crm.orders SET status = $1 WHERE id = $2 AND status <> 'cancelled'",
		"SELECT 'ünïcode', 1.5e10, B'0101', x'ff', true, NULL, -2147483648, 9223372036854775807",
		"SELEC 1",
		"",
	} {
		want, wantErr := pg.Parse(sql)
		got, err := Parse(sql)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Errorf("%q: error %v, pg_query.Parse's %v", sql, err, wantErr)
			continue
		}
		if err == nil && !proto.Equal(got, want) {
			t.Errorf("%q: tree differs from pg_query.Parse's", sql)
		}
	}
}

// TestTreesDoNotKeepEachOtherAlive decodes many trees and keeps none:
// after a collection their memory must be gone, though the decoder that
// made them is still in its pool. Chunks shared between consecutive trees
// linked every tree to the one before, so that the pool's decoder kept all
// of them alive, and a verdict cache bounded in bytes held several times
// its bound.
func TestTreesDoNotKeepEachOtherAlive(t *testing.T) {
	const n = 5000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if _, err := Parse("SELECT c.email AS a" + strconv.Itoa(i) + ", o.status FROM crm.customers c JOIN crm.orders o ON o.customer_id = c.id WHERE o.id = $1"); err != nil {
			t.Fatal(err)
		}
	}
	// One collection moves the pool's decoders to its victim cache, where
	// they stay reachable.
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 256<<10 {
		t.Fatalf("%d trees, none kept, still hold %d KiB after a collection", n, grown>>10)
	}
}
