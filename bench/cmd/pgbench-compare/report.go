package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// results is everything one invocation measured.
type results struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Options  options           `json:"-"`
	Command  string            `json:"command"`
	Machine  map[string]string `json:"machine"`
	Runs     []runResult       `json:"runs"`
	CopySQL  string            `json:"copy_sql,omitempty"`
	Copy     []copyResult      `json:"copy,omitempty"`
	Idle     []idleResult      `json:"idle,omitempty"`
	Profiles []profileResult   `json:"profiles,omitempty"`
	Notes    []string          `json:"notes,omitempty"`
}

// commitOf names the commit of the tree pgguard is built from, and says
// when the tree (outside bench/) has uncommitted changes.
func commitOf(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", ".", ":!bench").Output(); err == nil && len(out) > 0 {
		c += " + uncommitted changes"
	}
	return c
}

func machineInfo(e *env) map[string]string {
	m := map[string]string{
		"cpus": fmt.Sprint(runtime.NumCPU()),
		"go":   runtime.Version(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	m["commit"] = e.commit
	if out, err := exec.Command("pgbouncer", "--version").Output(); err == nil {
		m["pgbouncer"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if out, err := exec.Command("pgbench", "--version").Output(); err == nil {
		m["pgbench"] = strings.TrimSpace(string(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, e.superURL()); err == nil {
		var v string
		if c.QueryRow(ctx, "SHOW server_version").Scan(&v) == nil {
			m["postgresql"] = v
		}
		c.Close(ctx)
	}
	return m
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is one configuration's medians over the rounds.
type summary struct {
	Config config
	TPS    map[string]float64
	// Ratio is the median over rounds of TPS(target)/TPS(direct) in the
	// same round; Lo and Hi its range.
	Ratio, Lo, Hi map[string]float64
	P50, P99      map[string]float64
	CPU10k        map[string]float64
	CS            map[string]float64
	Mig           map[string]float64 // negative: not measured
	Errors        int
}

// perTx formats a per-transaction count; negative means not measured.
func perTx(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

func summarise(o *options, runs []runResult) []summary {
	var out []summary
	for _, c := range o.configs() {
		s := summary{Config: c, TPS: map[string]float64{}, Ratio: map[string]float64{}, Lo: map[string]float64{},
			Hi: map[string]float64{}, P50: map[string]float64{}, P99: map[string]float64{}, CPU10k: map[string]float64{}, CS: map[string]float64{}, Mig: map[string]float64{}}
		byRound := map[int]map[string]runResult{}
		for _, t := range o.targets {
			var tps, p50, p99, cpu, cs, mig []float64
			for _, r := range runs {
				if r.Config != c || r.Target != t {
					continue
				}
				if r.Err != "" {
					s.Errors++
					continue
				}
				if byRound[r.Round] == nil {
					byRound[r.Round] = map[string]runResult{}
				}
				byRound[r.Round][t] = r
				tps, p50, p99, cpu = append(tps, r.TPS), append(p50, r.P50ms), append(p99, r.P99ms), append(cpu, r.CPUPer10k)
				cs, mig = append(cs, r.CSPerTx), append(mig, r.MigPerTx)
			}
			s.TPS[t], s.P50[t], s.P99[t], s.CPU10k[t] = median(tps), median(p50), median(p99), median(cpu)
			s.CS[t], s.Mig[t] = median(cs), median(mig)
		}
		for _, t := range o.targets {
			var ratios []float64
			for _, rr := range byRound {
				d, okd := rr["direct"]
				x, okx := rr[t]
				if okd && okx && d.TPS > 0 {
					ratios = append(ratios, x.TPS/d.TPS)
				}
			}
			if len(ratios) > 0 {
				s.Ratio[t] = median(ratios)
				s.Lo[t], s.Hi[t] = slices.Min(ratios), slices.Max(ratios)
			}
		}
		out = append(out, s)
	}
	return out
}

func writeResults(o *options, res *results) error {
	res.Command = "go run ./bench/cmd/pgbench-compare " + strings.Join(os.Args[1:], " ")
	sums := summarise(o, res.Runs)
	md := markdown(o, res, sums)
	if err := os.WriteFile(filepath.Join(o.out, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "latest.json"), js, 0o644); err != nil {
		return err
	}
	if err := writeChart(filepath.Join(o.out, "latest.png"), o, sums); err != nil {
		return err
	}
	fmt.Println(md)
	logf("wrote %s/latest.md, latest.png, latest.json", o.out)
	return nil
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func markdown(o *options, res *results, sums []summary) string {
	var b strings.Builder
	m := res.Machine
	fmt.Fprintf(&b, "# pgbench through pgguard, PgBouncer (session mode) and directly\n\n")
	fmt.Fprintf(&b, "Measured %s (%s) on commit `%s`: %s CPUs (%s), kernel %s, PostgreSQL %s, %s, %s, %s.\n\n",
		res.Started.Format("2006-01-02 15:04"), res.Finished.Sub(res.Started).Round(time.Second),
		m["commit"], m["cpus"], m["cpu"], m["kernel"], m["postgresql"], m["pgbouncer"], m["pgbench"], m["go"])
	fmt.Fprintf(&b, "`%s`: pgbench scale %d, %d s per run, %d rounds; in each round every configuration runs "+
		"once against each target, back to back, in rotating order. TPS is the median over rounds; "+
		"**× direct** is the median over rounds of the target's TPS divided by direct TPS of the same round "+
		"(range over rounds in brackets). Latencies are the medians over rounds of each run's p50 and p99 "+
		"from pgbench's per-transaction log. CPU is the proxy process's user+system time per 10,000 "+
		"transactions (/proc/PID/stat). PostgreSQL runs with fsync and synchronous_commit off and the "+
		"tables in shared buffers, so proxy overhead is as visible as it gets.\n\n",
		res.Command, o.scale, o.seconds, o.rounds)
	if len(o.guardEnv) > 0 {
		fmt.Fprintf(&b, "pgguard ran with `%s` in its environment.\n\n", strings.Join(o.guardEnv, " "))
	}

	b.WriteString("| script | mode | clients |")
	for _, t := range o.targets {
		fmt.Fprintf(&b, " %s TPS |", t)
	}
	for _, t := range o.targets {
		if t != "direct" {
			fmt.Fprintf(&b, " %s × direct |", t)
		}
	}
	fmt.Fprintf(&b, " p50 ms (%s) | p99 ms (%s) |", strings.Join(o.targets, " / "), strings.Join(o.targets, " / "))
	for _, t := range o.targets {
		if t != "direct" {
			fmt.Fprintf(&b, " %s CPU s/10k tx |", t)
		}
	}
	b.WriteString("\n|---|---|--:|")
	for range o.targets {
		b.WriteString("--:|")
	}
	for _, t := range o.targets {
		if t != "direct" {
			b.WriteString("--:|")
		}
	}
	b.WriteString("--:|--:|")
	for _, t := range o.targets {
		if t != "direct" {
			b.WriteString("--:|")
		}
	}
	b.WriteString("\n")
	for _, s := range sums {
		fmt.Fprintf(&b, "| %s | %s | %s |", s.Config.scriptLabel(), s.Config.Mode, s.Config.clients())
		for _, t := range o.targets {
			fmt.Fprintf(&b, " %.0f |", s.TPS[t])
		}
		for _, t := range o.targets {
			if t != "direct" {
				if s.Ratio[t] == 0 {
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(&b, " %.2f (%.2f–%.2f) |", s.Ratio[t], s.Lo[t], s.Hi[t])
				}
			}
		}
		var p50, p99 []string
		for _, t := range o.targets {
			p50, p99 = append(p50, ms(s.P50[t])), append(p99, ms(s.P99[t]))
		}
		fmt.Fprintf(&b, " %s | %s |", strings.Join(p50, " / "), strings.Join(p99, " / "))
		for _, t := range o.targets {
			if t != "direct" {
				fmt.Fprintf(&b, " %.3f |", s.CPU10k[t])
			}
		}
		if s.Errors > 0 {
			fmt.Fprintf(&b, " %d failed runs", s.Errors)
		}
		b.WriteString("\n")
	}
	var proxies []string
	for _, t := range o.targets {
		if t != "direct" {
			proxies = append(proxies, t)
		}
	}
	if len(proxies) > 0 {
		b.WriteString("\nPer transaction, medians over rounds: proxy CPU in microseconds, context switches " +
			"and CPU migrations of all the proxy's threads (/proc/PID/task/*/status and sched).\n\n| script | mode | clients |")
		for _, t := range proxies {
			fmt.Fprintf(&b, " %s CPU µs/tx | %s switches/tx | %s migrations/tx |", t, t, t)
		}
		b.WriteString("\n|---|---|--:|" + strings.Repeat("--:|--:|--:|", len(proxies)) + "\n")
		for _, s := range sums {
			fmt.Fprintf(&b, "| %s | %s | %s |", s.Config.scriptLabel(), s.Config.Mode, s.Config.clients())
			for _, t := range proxies {
				fmt.Fprintf(&b, " %.0f | %.1f | %s |", s.CPU10k[t]*100, s.CS[t], perTx(s.Mig[t]))
			}
			b.WriteString("\n")
		}
	}
	writeShapesMemory(&b, o, res.Runs, proxies)
	b.WriteString("\n![TPS relative to direct and proxy CPU per 10k transactions](latest.png)\n")

	if len(res.Copy) > 0 {
		fmt.Fprintf(&b, "\n## COPY ... TO STDOUT\n\n`%s`, read with pgx's CopyTo into a byte counter, "+
			"rounds interleaved as above; medians over rounds.\n\n", res.CopySQL)
		b.WriteString("| target | bytes | seconds | MiB/s | time × direct | proxy CPU s/GiB |\n|---|--:|--:|--:|--:|--:|\n")
		direct := map[int]float64{}
		for _, c := range res.Copy {
			if c.Target == "direct" && c.Err == "" {
				direct[c.Round] = c.Seconds
			}
		}
		for _, t := range o.targets {
			var secs, mibs, ratios, cpu []float64
			var bytes int64
			errs := 0
			for _, c := range res.Copy {
				if c.Target != t {
					continue
				}
				if c.Err != "" {
					errs++
					continue
				}
				bytes = c.Bytes
				secs = append(secs, c.Seconds)
				mibs = append(mibs, float64(c.Bytes)/(1<<20)/c.Seconds)
				cpu = append(cpu, c.ProxyCPU/(float64(c.Bytes)/(1<<30)))
				if d := direct[c.Round]; d > 0 {
					ratios = append(ratios, c.Seconds/d)
				}
			}
			if len(secs) == 0 {
				fmt.Fprintf(&b, "| %s | failed (%d errors) | | | | |\n", t, errs)
				continue
			}
			ratio := "–"
			if t != "direct" && len(ratios) > 0 {
				ratio = fmt.Sprintf("%.2f (%.2f–%.2f)", median(ratios), slices.Min(ratios), slices.Max(ratios))
			}
			cpuS := "–"
			if t != "direct" {
				cpuS = fmt.Sprintf("%.2f", median(cpu))
			}
			fmt.Fprintf(&b, "| %s | %d | %.2f | %.0f | %s | %s |\n", t, bytes, median(secs), median(mibs), ratio, cpuS)
		}
	}

	if len(res.Idle) > 0 {
		b.WriteString("\n## Memory per idle client connection\n\n" +
			"A fresh proxy process; one connection and one statement, then RSS (/proc/PID/status VmRSS); " +
			"then more connections up to N (in steps, on the same process), one statement on each, 3 s idle, RSS again. " +
			"Per connection = RSS delta / N. Behind each proxy session there is a server connection (session mode), " +
			"to PostgreSQL or to a transaction-mode pool in front of it (-idle-pool), which is not counted here.\n\n")
		b.WriteString("| proxy | upstream | connections | RSS before | RSS after | per idle connection | step opened in |\n|---|---|--:|--:|--:|--:|--:|\n")
		for _, ir := range res.Idle {
			fmt.Fprintf(&b, "| %s | %s | %d | %.1f MiB | %.1f MiB | **%.1f KiB** | %.1f s |\n", ir.Target, ir.Upstream, ir.Connections,
				float64(ir.RSSBefore)/(1<<20), float64(ir.RSSAfter)/(1<<20), ir.PerConn/1024, ir.OpenSeconds)
		}
		for _, ir := range res.Idle {
			if len(ir.Go) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\n%s's Go runtime (from /metrics) with %d connections, before → after, per connection:\n\n", ir.Target, ir.Connections)
			for _, name := range goMetrics {
				v, ok := ir.Go[name]
				if !ok {
					continue
				}
				per := float64(v[1]-v[0]) / float64(ir.Connections)
				if strings.HasSuffix(name, "_bytes") {
					fmt.Fprintf(&b, "- `%s`: %.1f MiB → %.1f MiB, %.1f KiB per connection\n", name,
						float64(v[0])/(1<<20), float64(v[1])/(1<<20), per/1024)
				} else {
					fmt.Fprintf(&b, "- `%s`: %d → %d, %.2f per connection\n", name, v[0], v[1], per)
				}
			}
		}
	}

	if len(res.Profiles) > 0 {
		b.WriteString("\n## perf profiles\n\n`perf record -e cpu-clock -F 999 -g -p PID` during an extra run; self and cumulative time by symbol.\n\n")
		for _, p := range res.Profiles {
			fmt.Fprintf(&b, "- %s, %s (%.0f tps): [%s](%s)\n", p.Target, p.Config, p.TPS, p.File, p.File)
		}
		b.WriteString("\nSystem calls and context switches of the proxy per transaction during those runs (`perf stat`):\n\n| proxy | configuration |")
		for _, ev := range statEvents {
			fmt.Fprintf(&b, " %s |", ev.name)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("--:|", len(statEvents)) + "\n")
		for _, p := range res.Profiles {
			fmt.Fprintf(&b, "| %s | %s |", p.Target, p.Config)
			for _, ev := range statEvents {
				fmt.Fprintf(&b, " %.2f |", p.PerTx[ev.name])
			}
			b.WriteString("\n")
		}
	}
	if len(res.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// writeShapesMemory tables the proxies' resident memory after the shapes
// scripts' runs, whose many statement texts fill pgguard's caches: the
// largest RSS seen over the rounds, which the cache bounds must hold.
func writeShapesMemory(b *strings.Builder, o *options, runs []runResult, proxies []string) {
	var configs []config
	for _, c := range o.configs() {
		if isShapes(c.Script) {
			configs = append(configs, c)
		}
	}
	if len(configs) == 0 || len(proxies) == 0 {
		return
	}
	b.WriteString("\nProxy memory after the shapes runs: the largest RSS over the rounds (/proc/PID/status VmRSS), MiB.\n\n| script | clients |")
	for _, t := range proxies {
		fmt.Fprintf(b, " %s |", t)
	}
	b.WriteString("\n|---|--:|" + strings.Repeat("--:|", len(proxies)) + "\n")
	for _, c := range configs {
		fmt.Fprintf(b, "| %s | %s |", c.Script, c.clients())
		for _, t := range proxies {
			var most int64
			for _, r := range runs {
				if r.Config == c && r.Target == t {
					most = max(most, r.ProxyRSS)
				}
			}
			fmt.Fprintf(b, " %.1f |", float64(most)/(1<<20))
		}
		b.WriteString("\n")
	}
}
