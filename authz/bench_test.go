package authz

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// statement is a typical join: four columns, all allowed for the purpose.
var statement = []Access{
	{Column: "crm.customers.first_name", Act: ActRead},
	{Column: "crm.customers.email", Act: ActRead},
	{Column: "crm.orders.status", Act: ActRead},
	{Column: "crm.orders.customer_id", Act: ActRead},
}

// BenchmarkDecideCached is the hot path: a statement whose columns were seen.
func BenchmarkDecideCached(b *testing.B) {
	p := loadShipped(b, Options{})
	if !p.Decide("sales_app", "order_fulfilment", statement).Allowed {
		b.Fatal("statement denied")
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Decide("sales_app", "order_fulfilment", statement)
	}
}

// BenchmarkDecideCachedParallel is the hot path from many connections.
func BenchmarkDecideCachedParallel(b *testing.B) {
	p := loadShipped(b, Options{})
	p.Decide("sales_app", "order_fulfilment", statement)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Decide("sales_app", "order_fulfilment", statement)
		}
	})
}

// BenchmarkDecideCachedDenied has one denied column, which allocates the Denied list.
func BenchmarkDecideCachedDenied(b *testing.B) {
	p := loadShipped(b, Options{})
	accesses := append([]Access{{Column: "crm.customers.iban", Act: ActRead}}, statement...)
	p.Decide("sales_app", "order_fulfilment", accesses)
	b.ReportAllocs()
	for b.Loop() {
		p.Decide("sales_app", "order_fulfilment", accesses)
	}
}

// BenchmarkDecideCold is one column the cache has not seen: categories,
// roles, purposes and rules evaluated from the tables.
func BenchmarkDecideCold(b *testing.B) {
	p := loadShipped(b, Options{})
	b.ReportAllocs()
	for b.Loop() {
		p.evaluate("finance_app", "dunning", "crm.orders.shipping_address", ActRead)
	}
}

// BenchmarkDecideCold5000 is a cache miss on a generated 5,000-rule policy.
func BenchmarkDecideCold5000(b *testing.B) {
	g := genPolicy(rand.New(rand.NewPCG(7, 7)), 5000)
	p, err := Load(shippedModel, writeFile(b, b.TempDir(), "policy.csv", g.text), Options{})
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		p.evaluate(pick(rnd, g.subjects), pick(rnd, g.purposes), pick(rnd, g.columns), ActRead)
	}
}

// BenchmarkCasbinEnforce5000 is what the cold path would cost with Casbin's
// own Enforce on the same policy, for comparison.
func BenchmarkCasbinEnforce5000(b *testing.B) {
	g := genPolicy(rand.New(rand.NewPCG(7, 7)), 5000)
	p, err := Load(shippedModel, writeFile(b, b.TempDir(), "policy.csv", g.text), Options{})
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.enforcer.Enforce(pick(rnd, g.subjects), pick(rnd, g.purposes), pick(rnd, g.columns), "read"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReload5000 reloads a generated 5,000-rule policy through the
// Engine: read, hash, lint, Casbin load, index and swap.
func BenchmarkReload5000(b *testing.B) {
	g := genPolicy(rand.New(rand.NewPCG(7, 7)), 5000)
	dir := b.TempDir()
	model := writeFile(b, dir, "model.conf", readFile(b, shippedModel))
	policy := writeFile(b, dir, "policy.csv", g.text)
	e, err := NewEngine(model, policy, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(g.rules), "rules")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++ // a different comment each round, so every reload is a real one
		writeFile(b, dir, "policy.csv", g.text+"# round "+strconv.Itoa(i)+"\n")
		b.StartTimer()
		if res, err := e.Reload(); err != nil || !res.Swapped {
			b.Fatalf("reload: %+v %v", res, err)
		}
	}
}
