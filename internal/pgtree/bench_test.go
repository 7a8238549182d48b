package pgtree

import (
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/proto"
)

// The point SELECT of the cold-analysis target, split into the steps of
// a parse: PostgreSQL's parser and the protobuf it builds in C
// (ParseToProtobuf), then the Go decode of that protobuf, by
// proto.Unmarshal (what pg_query.Parse does) or by the generated decoder.
const pointSelect = "SELECT id, email, phone FROM crm.customers WHERE id = $1"

func BenchmarkParseToProtobuf(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := pgparser.ParseToProtobuf(pointSelect); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUnmarshal(b *testing.B) {
	buf, err := pgparser.ParseToProtobuf(pointSelect)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := proto.Unmarshal(buf, &pg.ParseResult{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGenerated(b *testing.B) {
	buf, err := pgparser.ParseToProtobuf(pointSelect)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := decodeFast(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPgQueryParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := pg.Parse(pointSelect); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(pointSelect); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawParse is PostgreSQL's parser alone, for comparison with
// ParseToProtobuf: IsUtilityStmt parses in C and returns one flag per
// statement, building no protobuf.
func BenchmarkRawParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := pgparser.IsUtilityStmt(pointSelect); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPointSelectSize logs the size of the point SELECT's protobuf, which
// the decode benchmarks decode.
func TestPointSelectSize(t *testing.T) {
	buf, err := pgparser.ParseToProtobuf(pointSelect)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes", len(buf))
}
