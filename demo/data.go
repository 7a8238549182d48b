package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Invented but realistic Dutch names and places. No row describes a real
// person: names are combined at random and every BSN fails the
// eleven-test that real BSNs pass.
var (
	firstNames = []string{"Anna", "Bram", "Carla", "Daan", "Emma", "Finn", "Grietje", "Hugo", "Iris", "Jesse",
		"Kees", "Lotte", "Milan", "Noor", "Olaf", "Puck", "Ruben", "Sanne", "Thijs", "Vera", "Willem", "Yara", "Zoë", "Sem"}
	lastNames = []string{"de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
		"Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer"}
	streets = []string{"Dorpsstraat", "Kerkstraat", "Molenweg", "Schoolstraat", "Stationsweg", "Julianastraat", "Beatrixlaan", "Nieuwstraat"}
	cities  = []string{"Amsterdam", "Rotterdam", "Utrecht", "Groningen", "Zwolle", "Eindhoven", "Leiden", "Arnhem", "Haarlem", "Delft"}
	depts   = []string{"sales", "finance", "marketing", "customer_service", "hr"}
	notes   = []string{"influenza", "back injury", "burn-out", "surgery", "migraine"}
)

// fakeBSN returns nine digits that look like a BSN but fail its eleven-test,
// so none can be a real citizen service number.
func fakeBSN(r *rand.Rand) string {
	for {
		d := make([]int, 9)
		for i := range d {
			d[i] = r.IntN(10)
		}
		sum := 0
		for i := 0; i < 8; i++ {
			sum += d[i] * (9 - i)
		}
		sum -= d[8]
		if sum%11 != 0 {
			var b strings.Builder
			for _, x := range d {
				b.WriteByte(byte('0' + x))
			}
			return b.String()
		}
	}
}

// ValidBSN reports whether s passes the BSN eleven-test.
func ValidBSN(s string) bool {
	if len(s) != 9 {
		return false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		w := 9 - i
		if i == 8 {
			w = -1
		}
		sum += int(c-'0') * w
	}
	return sum%11 == 0
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func fakeIBAN(r *rand.Rand) string {
	return fmt.Sprintf("NL%02dDEMO%010d", r.IntN(100), r.Int64N(1e10))
}

// dataSQL builds INSERT statements for customers customers, orders and
// employees; the same seed always yields the same data.
func dataSQL(customers, employees int) string {
	r := rand.New(rand.NewPCG(2026, 11))
	var b strings.Builder
	b.WriteString("INSERT INTO crm.customers VALUES\n")
	for i := 1; i <= customers; i++ {
		first, last := pick(r, firstNames), pick(r, lastNames)
		email := strings.ToLower(strings.ReplaceAll(first+"."+last, " ", "")) + fmt.Sprintf("%d@example.nl", i)
		fmt.Fprintf(&b, "(%d, %s, %s, %s, '06%08d', '%s %d', '%04d %c%c', '%s', DATE '%d-%02d-%02d', '%s', '%s')",
			i, lit(first), lit(last), lit(email), r.IntN(1e8), pick(r, streets), 1+r.IntN(200),
			1000+r.IntN(9000), 'A'+rune(r.IntN(26)), 'A'+rune(r.IntN(26)), pick(r, cities),
			1940+r.IntN(65), 1+r.IntN(12), 1+r.IntN(28), fakeBSN(r), fakeIBAN(r))
		b.WriteString(sep(i, customers))
	}
	b.WriteString("INSERT INTO crm.orders VALUES\n")
	orders := customers * 2
	for i := 1; i <= orders; i++ {
		fmt.Fprintf(&b, "(%d, %d, now() - interval '%d days', %d.%02d, '%s', '%s %d')",
			i, 1+r.IntN(customers), r.IntN(365), 5+r.IntN(500), r.IntN(100),
			pick(r, []string{"new", "paid", "shipped", "returned"}), pick(r, streets), 1+r.IntN(200))
		b.WriteString(sep(i, orders))
	}
	b.WriteString("INSERT INTO hr.employees VALUES\n")
	for i := 1; i <= employees; i++ {
		first, last := pick(r, firstNames), pick(r, lastNames)
		fmt.Fprintf(&b, "(%d, %s, %s, %s, '06%08d', '%s', '%s', DATE '%d-%02d-%02d', DATE '%d-%02d-01', '%s')",
			i, lit(first), lit(last), lit(strings.ToLower(strings.ReplaceAll(first, " ", ""))+fmt.Sprintf("%d@corp.example", i)),
			r.IntN(1e8), fakeBSN(r), fakeIBAN(r), 1960+r.IntN(45), 1+r.IntN(12), 1+r.IntN(28),
			2005+r.IntN(20), 1+r.IntN(12), pick(r, depts))
		b.WriteString(sep(i, employees))
	}
	b.WriteString("INSERT INTO hr.salaries SELECT id, 2500 + (id * 37) % 4000, iban FROM hr.employees;\n")
	b.WriteString("INSERT INTO hr.sick_leave VALUES\n")
	for i := 1; i <= employees/4; i++ {
		fmt.Fprintf(&b, "(%d, DATE '2026-%02d-%02d', NULL, '%s')", i*4-3, 1+r.IntN(10), 1+r.IntN(28), pick(r, notes))
		b.WriteString(sep(i, employees/4))
	}
	return b.String()
}

func sep(i, n int) string {
	if i == n {
		return ";\n"
	}
	return ",\n"
}

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
