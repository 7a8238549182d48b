// Package pgtree parses SQL text into pg_query_go's parse tree as
// pg_query.Parse does, but decodes the protobuf that PostgreSQL's parser
// (libpg_query, behind cgo) produces with a decoder generated for
// pg_query's message types (decode_gen.go, written by ./gen) instead of
// proto.Unmarshal. The decoder hands out the tree's structs from slabs,
// one per type, and its strings from one block, all of them the tree's
// own, so decoding a typical statement allocates a few times per type
// where proto.Unmarshal allocates once per node, list and string.
//
// The result is the same tree: every field of every message type is
// decoded, and whatever the generated code does not expect (a field
// number or wire type it does not know, a field seen twice, invalid
// UTF-8, nesting past maxDepth) makes Parse decode the whole buffer
// again with proto.Unmarshal, which then decides.
package pgtree

//go:generate go run ./gen -o decode_gen.go

import (
	"errors"
	"math"
	"sync"
	"unicode/utf8"
	"unsafe"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Parse parses sql, one or more statements, as pg_query.Parse does. The
// errors are pg_query's (*parser.Error for a syntax error).
func Parse(sql string) (*pg.ParseResult, error) {
	buf, err := parser.ParseToProtobuf(sql)
	if err != nil {
		return nil, err
	}
	return Decode(buf)
}

// Decode decodes a serialized pg_query ParseResult. The tree shares no
// memory with buf.
func Decode(buf []byte) (*pg.ParseResult, error) {
	if tree, err := decodeFast(buf); err == nil {
		return tree, nil
	}
	tree := &pg.ParseResult{}
	if err := proto.Unmarshal(buf, tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// Errors of the generated decoder. Each one only means "not the shape
// the generated code expects": Decode then leaves buf to proto.Unmarshal.
var (
	errMalformed    = errors.New("pgtree: malformed protobuf")
	errWireType     = errors.New("pgtree: unexpected wire type")
	errUnknownField = errors.New("pgtree: unknown field")
	errRepeated     = errors.New("pgtree: singular field repeated")
	errUTF8         = errors.New("pgtree: string is not valid UTF-8")
	errDepth        = errors.New("pgtree: nested too deeply")
)

// maxDepth bounds the generated decoder's recursion (messages within
// messages); a deeper tree is left to proto.Unmarshal. sqlscan refuses
// text nested deeply enough to come near it before parsing.
const maxDepth = 10000

// decoder is one decode's state: the slabs and the block of strings the
// tree is made of. The pool keeps the decoder's own memory, not the
// chunks, which belong to the tree they were made for.
type decoder struct {
	slabs
	strs  []byte
	depth int
	// size is the length of the buffer decoded, which bounds the bytes of
	// its strings.
	size int
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

// decodeFast decodes buf with the generated code only; an error means
// buf has a shape it does not expect.
func decodeFast(buf []byte) (*pg.ParseResult, error) {
	d := decoders.Get().(*decoder)
	d.depth, d.size = 0, len(buf)
	tree := d.mParseResult.next()
	err := d.decParseResult(buf, tree)
	// The tree's chunks are its own: the next decode starts new ones.
	d.slabs, d.strs = slabs{}, nil
	decoders.Put(d)
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// slabBytes bounds the memory of one chunk of a slab.
const slabBytes = 4096

// firstChunk is how many structs a slab's first chunk in a decode holds
// (most types occur a few times in a tree); each further chunk of the
// decode holds twice as many as the one before, up to slabBytes.
const firstChunk = 4

// slab hands out zeroed structs of one type from chunks. Its chunks serve
// one decode only (decodeFast drops them after it): a chunk shared by two
// trees would link them, and through chunks shared in turn every tree the
// decoder ever made, keeping all of them alive as long as one is.
type slab[T any] struct {
	free []T
	grow int
}

func (s *slab[T]) next() *T {
	if len(s.free) == 0 {
		var zero T
		size := int(unsafe.Sizeof(zero))
		n := max(1, min(max(s.grow, firstChunk), slabBytes/size))
		s.free, s.grow = make([]T, n), 2*n
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// ptrSlab hands out the backing arrays of repeated fields, for one decode
// like slab.
type ptrSlab[T any] struct {
	free []*T
	grow int
}

// take returns an empty slice with room for exactly n pointers: append
// fills it without growing, and past n would copy rather than write into
// a neighbour's.
func (s *ptrSlab[T]) take(n int) []*T {
	if n > len(s.free) {
		if n > 64 {
			return make([]*T, 0, n)
		}
		size := min(max(s.grow, 4*firstChunk, n), slabBytes/8)
		s.free, s.grow = make([]*T, size), 2*size
	}
	p := s.free[:0:n]
	s.free = s.free[n:]
	return p
}

// countFields counts, for each field number below len(counts), how often
// it occurs in the message b.
func countFields(b []byte, counts []int32) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if int(num) < len(counts) {
			counts[num]++
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
	}
	return nil
}

// The helpers below decode one field of the kind their name says into
// *dst and return what follows it in b. Each checks the wire type the
// kind is written in.

// message decodes a singular message field into a struct from s. A field
// already set would be merged by proto.Unmarshal: that is left to it.
func message[T any](d *decoder, typ protowire.Type, b []byte, dst **T, s *slab[T], dec func(*decoder, []byte, *T) error) ([]byte, error) {
	if *dst != nil {
		return nil, errRepeated
	}
	x, rest, err := sub(d, typ, b, s, dec)
	*dst = x
	return rest, err
}

// element decodes one element of a repeated message field.
func element[T any](d *decoder, typ protowire.Type, b []byte, dst *[]*T, s *slab[T], dec func(*decoder, []byte, *T) error) ([]byte, error) {
	x, rest, err := sub(d, typ, b, s, dec)
	*dst = append(*dst, x)
	return rest, err
}

func sub[T any](d *decoder, typ protowire.Type, b []byte, s *slab[T], dec func(*decoder, []byte, *T) error) (*T, []byte, error) {
	if typ != protowire.BytesType {
		return nil, nil, errWireType
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, nil, errMalformed
	}
	x := s.next()
	if err := dec(d, v, x); err != nil {
		return nil, nil, err
	}
	return x, b[n:], nil
}

func varint(typ protowire.Type, b []byte) (uint64, []byte, error) {
	if typ != protowire.VarintType {
		return 0, nil, errWireType
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, nil, errMalformed
	}
	return v, b[n:], nil
}

func boolean(typ protowire.Type, b []byte, dst *bool) ([]byte, error) {
	v, rest, err := varint(typ, b)
	*dst = protowire.DecodeBool(v)
	return rest, err
}

// int32s decodes int32 and enum fields, as proto.Unmarshal does: the
// varint truncated to 32 bits.
func int32s[T ~int32](typ protowire.Type, b []byte, dst *T) ([]byte, error) {
	v, rest, err := varint(typ, b)
	*dst = T(int32(v))
	return rest, err
}

func uint32s(typ protowire.Type, b []byte, dst *uint32) ([]byte, error) {
	v, rest, err := varint(typ, b)
	*dst = uint32(v)
	return rest, err
}

func int64s(typ protowire.Type, b []byte, dst *int64) ([]byte, error) {
	v, rest, err := varint(typ, b)
	*dst = int64(v)
	return rest, err
}

func uint64One(typ protowire.Type, b []byte, dst *uint64) ([]byte, error) {
	v, rest, err := varint(typ, b)
	*dst = v
	return rest, err
}

func double(typ protowire.Type, b []byte, dst *float64) ([]byte, error) {
	if typ != protowire.Fixed64Type {
		return nil, errWireType
	}
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return nil, errMalformed
	}
	*dst = math.Float64frombits(v)
	return b[n:], nil
}

// uint64s decodes one occurrence of a repeated uint64 field, packed or
// not, appending to *dst.
func uint64s(typ protowire.Type, b []byte, dst *[]uint64) ([]byte, error) {
	switch typ {
	case protowire.VarintType:
		return uint64Append(b, dst)
	case protowire.BytesType:
		packed, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, errMalformed
		}
		for len(packed) > 0 {
			var err error
			if packed, err = uint64Append(packed, dst); err != nil {
				return nil, err
			}
		}
		return b[n:], nil
	}
	return nil, errWireType
}

func uint64Append(b []byte, dst *[]uint64) ([]byte, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return nil, errMalformed
	}
	*dst = append(*dst, v)
	return b[n:], nil
}

// strBlock bounds the blocks strings are copied into (a block is no
// longer than the buffer decoded); a longer string gets memory of its
// own, so a string kept from a tree keeps at most one block (or itself)
// alive.
const strBlock = 2048

// str decodes a string field after checking, as proto.Unmarshal does for
// proto3 strings, that it is UTF-8. Short strings are copied into the
// tree's blocks: each block's bytes are written once and never changed, which
// is what makes strings over them sound.
func (d *decoder) str(typ protowire.Type, b []byte, dst *string) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, errWireType
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, errMalformed
	}
	if !utf8.Valid(v) {
		return nil, errUTF8
	}
	switch {
	case len(v) == 0:
		*dst = ""
	case len(v) > strBlock/8:
		*dst = string(v)
	default:
		if cap(d.strs)-len(d.strs) < len(v) {
			d.strs = make([]byte, 0, max(len(v), min(strBlock, d.size)))
		}
		start := len(d.strs)
		d.strs = append(d.strs, v...)
		*dst = unsafe.String(&d.strs[start], len(v))
	}
	return b[n:], nil
}
