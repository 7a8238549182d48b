package main

import (
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, c := range []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3), 50, 2 * time.Millisecond},
		{hundred, 50, 51 * time.Millisecond},
		{hundred, 99, 100 * time.Millisecond},
	} {
		if got := pct(c.sorted, c.p); got != c.want {
			t.Errorf("pct(%d values, %d) = %s, want %s", len(c.sorted), c.p, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-sslmode", "disable,require", "-upstream", "prefer"}, true},
		{[]string{"-sslmode", "verify-full"}, false},
		{[]string{"-upstream", "tls"}, false},
		{[]string{"-rounds", "0"}, false},
	} {
		if _, err := parseOptions(c.args); (err == nil) != c.ok {
			t.Errorf("%v: error %v", c.args, err)
		}
	}
}
