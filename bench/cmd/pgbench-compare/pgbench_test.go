package main

import (
	"slices"
	"testing"
)

func TestConfigs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"light rate for each mode", []string{"-scripts", "select-only,tpcb", "-modes", "simple,prepared", "-clients", "1,8", "-light-rate", "150"}, []string{
			"select-only simple c1", "select-only simple c8", "select-only prepared c1", "select-only prepared c8",
			"tpcb simple c1", "tpcb simple c8", "tpcb prepared c1", "tpcb prepared c8",
			"select-only simple c1 at 150/s", "select-only prepared c1 at 150/s",
		}},
		{"no light rate", []string{"-scripts", "select-only", "-modes", "extended", "-clients", "8", "-light-rate", "0"}, []string{
			"select-only extended c8",
		}},
		{"light rate needs select-only", []string{"-scripts", "tpcb", "-modes", "simple", "-clients", "1"}, []string{
			"tpcb simple c1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range o.configs() {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("configs = %q\nwant %q", got, tt.want)
			}
		})
	}
	if _, err := parseOptions([]string{"-light-rate", "-1"}); err == nil {
		t.Error("a negative -light-rate was accepted")
	}
}
