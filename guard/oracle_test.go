package guard_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// historySteps are the state changes the oracle draws from, each sent as
// one Query message, pipelined in random groups.
var historySteps = []string{
	"SET search_path = decoy", "SET search_path = hr", "SET search_path = hr, decoy",
	"SET search_path = decoy, hr", "SET LOCAL search_path = decoy", "SET LOCAL search_path = hr",
	"RESET search_path", "SET search_path = ''", "SET search_path TO DEFAULT",
	"SELECT set_config('search_path', 'decoy', false)", "SELECT set_config('search_path', 'decoy', true)",
	"BEGIN", "COMMIT", "ROLLBACK", "COMMIT AND CHAIN", "ROLLBACK AND CHAIN",
	"SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "RELEASE SAVEPOINT a",
	"SELECT 1/0", "DISCARD ALL", "RESET ALL",
	"SET search_path = decoy; SELECT 1/0", "BEGIN; SET LOCAL search_path = decoy",
	"SET pgguard.purpose = 'order_fulfilment'", "RESET pgguard.purpose",
}

// TestStateOracle plays random session histories through pgguard and, after
// each (sent in the simple or the extended protocol), compares pgguard's verdict on reading salaries with what the
// server's own state implies: refused whenever the server would resolve the
// name to hr.salaries. PGGUARD_ORACLE_HISTORIES runs more histories.
func TestStateOracle(t *testing.T) {
	histories := 30
	if n, err := strconv.Atoi(os.Getenv("PGGUARD_ORACLE_HISTORIES")); err == nil && n > 0 {
		histories = n
	}
	w := decoyWorld(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for h := 0; h < histories; h++ {
		start := []string{"hr", "decoy", "decoy,hr", "hr,decoy"}[rng.IntN(4)]
		r := w.raw(t, "sales_app", "-c pgguard.purpose=order_fulfilment -c search_path="+strings.ReplaceAll(start, ",", `\,`))
		var history []string
		for step := 0; step < 1+rng.IntN(8); step++ {
			var msgs []pgproto3.FrontendMessage
			for i := 0; i < 1+rng.IntN(3); i++ {
				sql := historySteps[rng.IntN(len(historySteps))]
				history = append(history, sql)
				if strings.Contains(sql, ";") || rng.IntN(2) == 0 {
					msgs = append(msgs, q(sql))
					continue
				}
				// The extended protocol, one statement per sync segment.
				msgs = append(append(msgs, extended("", sql)...), &pgproto3.Sync{})
			}
			r.send(msgs...)
		}
		show := r.send(q("SHOW search_path"))
		out := r.send(q(salaries))
		r.conn.Close()
		if len(show.errors) > 0 {
			continue // a failed transaction block: the server refuses everything
		}
		path := show.values
		hrFirst := false
		for _, schema := range strings.Split(path, ",") {
			schema = strings.TrimSpace(schema)
			if schema == "hr" {
				hrFirst = true
				break
			}
			if schema == "decoy" {
				break
			}
		}
		if hrFirst && (out.lastErr == "" || out.lastRows > 0) {
			t.Fatalf("history %q from path %s: the server's path is %q, yet salaries was read", history, start, path)
		}
	}
}
