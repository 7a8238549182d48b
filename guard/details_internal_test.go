package guard

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// replaceDetail changes the DETAIL and nothing else: every other field,
// unknown ones included, keeps its bytes and its place.
func TestReplaceDetailKeepsEveryOtherField(t *testing.T) {
	e := &pgproto3.ErrorResponse{Severity: "FEHLER", SeverityUnlocalized: "ERROR", Code: "23505",
		Message: "doppelter Schlüsselwert", Detail: "Schlüssel »(iban)=(NL00BANK0123456789)« existiert bereits.",
		Hint: "h", SchemaName: "crm", TableName: "customers", ConstraintName: "customers_iban_key",
		File: "nbtinsert.c", Line: 666, Routine: "_bt_check_unique",
		UnknownFields: map[byte]string{'X': "future"}}
	full, err := e.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := full[5:]
	f, ok := scanError(body)
	if !ok || string(f.code) != "23505" || string(f.schema) != "crm" || string(f.table) != "customers" ||
		string(f.constraint) != "customers_iban_key" || !f.hasDetail || !f.mayShowRows() {
		t.Fatalf("scanned %+v, ok %v", f, ok)
	}
	out := replaceDetail(body, withheldDetail)
	want := bytes.Replace(body, []byte("D"+e.Detail+"\x00"), []byte("D"+withheldDetail+"\x00"), 1)
	if !bytes.Equal(out, want) {
		t.Fatalf("replaced:\n%q\nwant\n%q", out, want)
	}
}

func TestScanErrorRefusesMalformedBodies(t *testing.T) {
	for _, body := range []string{"", "C23505", "C23505\x00", "C23505\x00\x00extra", "D\x00t"} {
		if _, ok := scanError([]byte(body)); ok {
			t.Errorf("%q accepted", body)
		}
	}
	if f, ok := scanError([]byte("C22012\x00Dx\x00\x00")); !ok || f.mayShowRows() {
		t.Errorf("division by zero: ok %v, may show rows %v", ok, f.mayShowRows())
	}
}
