package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profileResult names the perf report of one profiled configuration.
type profileResult struct {
	Target string  `json:"target"`
	Config config  `json:"config"`
	File   string  `json:"file"`
	TPS    float64 `json:"tps"`
	// PerTx are system calls and context switches per transaction, from
	// perf stat over the same run.
	PerTx map[string]float64 `json:"per_tx,omitempty"`
}

// statEvents are counted with perf stat during profiled runs; the filtered
// one counts reads that failed (EAGAIN: nothing there yet).
var statEvents = []struct{ name, event, filter string }{
	{"syscalls", "raw_syscalls:sys_enter", ""},
	{"read", "syscalls:sys_enter_read", ""},
	{"read failed", "syscalls:sys_exit_read", "ret < 0"},
	{"write", "syscalls:sys_enter_write", ""},
	{"recvfrom", "syscalls:sys_enter_recvfrom", ""},
	{"sendto", "syscalls:sys_enter_sendto", ""},
	{"epoll_wait", "syscalls:sys_enter_epoll_wait", ""},
	{"epoll_pwait", "syscalls:sys_enter_epoll_pwait", ""},
	{"futex", "syscalls:sys_enter_futex", ""},
	{"nanosleep", "syscalls:sys_enter_nanosleep", ""},
	{"context switches", "context-switches", ""},
	{"CPU migrations", "cpu-migrations", ""},
}

// perfStat starts counting statEvents for pid; stop returns the counts.
func perfStat(ctx context.Context, pid int) (stop func() map[string]float64, err error) {
	args := []string{"stat", "-x", ",", "-p", fmt.Sprint(pid)}
	for _, ev := range statEvents {
		args = append(args, "-e", ev.event)
		if ev.filter != "" {
			args = append(args, "--filter", ev.filter)
		}
	}
	cmd := exec.CommandContext(ctx, "perf", args...)
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() map[string]float64 {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		counts := map[string]float64{}
		i := 0
		for _, line := range strings.Split(out.String(), "\n") {
			f := strings.Split(line, ",")
			if len(f) < 3 || i >= len(statEvents) || f[2] != statEvents[i].event {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				counts[statEvents[i].name] = v
			}
			i++
		}
		return counts
	}, nil
}

// profiled are the configurations profiled with -perf: select-only in
// every mode and TLS variant, and the TPC-B-like script in simple mode
// without TLS, at -perf-clients.
func profiled(o *options) []config {
	var out []config
	for _, v := range o.tls {
		if v == "none" {
			v = ""
		}
		for _, m := range o.modes {
			out = append(out, config{Script: "select-only", Mode: m, Clients: o.perfC, TLS: v})
		}
	}
	if has(o.tls, "none") {
		out = append(out, config{Script: "tpcb", Mode: "simple", Clients: o.perfC})
	}
	return out
}

// profileProxies samples pgguard's stacks with perf while pgbench runs
// through it, and writes a flat and a cumulative report per configuration;
// PgBouncer's too, for comparison, with select-only in prepared and simple mode.
func profileProxies(ctx context.Context, o *options, e *env, res *results) error {
	type job struct {
		target string
		c      config
	}
	var jobs []job
	for _, c := range profiled(o) {
		jobs = append(jobs, job{"pgguard", c})
	}
	if has(o.targets, "pgbouncer") {
		// The relay alone, and the relay with a new statement text each time.
		for _, c := range profiled(o) {
			if c.Script == "select-only" && (c.Mode == "prepared" || c.Mode == "simple") {
				jobs = append(jobs, job{"pgbouncer", c})
			}
		}
	}
	for _, j := range jobs {
		c, p := j.c, e.proxyFor(j.c, j.target)
		base := fmt.Sprintf("perf-%s-%s-%s-c%d", j.target, c.Script, c.Mode, c.Clients)
		if c.TLS != "" {
			base += "-tls-" + c.TLS
		}
		data := filepath.Join(e.work, base+".data")
		rec := exec.CommandContext(ctx, "perf", "record", "-e", "cpu-clock", "-F", "999", "-g",
			"-p", fmt.Sprint(p.pid()), "-o", data)
		var recOut strings.Builder
		rec.Stdout, rec.Stderr = &recOut, &recOut
		if err := rec.Start(); err != nil {
			return err
		}
		stopStat, err := perfStat(ctx, p.pid())
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		out, err := e.pgbench(ctx, c, j.target, o.seconds, "perf")
		_ = rec.Process.Signal(syscall.SIGINT)
		_ = rec.Wait()
		counts := stopStat()
		if err != nil {
			return err
		}
		perTx := map[string]float64{}
		if tx := out.tps * float64(o.seconds); tx > 0 {
			for k, v := range counts {
				perTx[k] = v / tx
			}
		}
		name := base + ".txt"
		var report strings.Builder
		fmt.Fprintf(&report, "# perf profile of %s (pid %d): pgbench %s, %d s, %.0f tps\n", j.target, p.pid(), c, o.seconds, out.tps)
		fmt.Fprintf(&report, "# perf record -e cpu-clock -F 999 -g -p PID\n\n## per transaction (perf stat over the run)\n\n")
		for _, ev := range statEvents {
			if v, ok := perTx[ev.name]; ok {
				fmt.Fprintf(&report, "    %8.2f  %s\n", v, ev.name)
			}
		}
		report.WriteString("\n")
		for _, v := range []struct {
			title string
			args  []string
		}{
			{"self time (perf report --no-children --sort symbol)", []string{"--no-children", "--percent-limit", "0.5"}},
			{"cumulative time (perf report --children --sort symbol)", []string{"--children", "--percent-limit", "2"}},
		} {
			args := append([]string{"report", "-i", data, "--stdio", "--sort", "symbol", "-g", "none"}, v.args...)
			b, err := exec.CommandContext(ctx, "perf", args...).Output()
			if err != nil {
				return fmt.Errorf("perf report: %w (%s)", err, recOut.String())
			}
			fmt.Fprintf(&report, "## %s\n\n%s\n", v.title, stripComments(string(b)))
		}
		path := filepath.Join(o.out, name)
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			return err
		}
		if !o.keep {
			_ = os.Remove(data)
		}
		logf("perf: %s %s -> %s", j.target, c, path)
		res.Profiles = append(res.Profiles, profileResult{Target: j.target, Config: c, File: name, TPS: out.tps, PerTx: perTx})
	}
	return nil
}

// trailingDashes are the empty columns perf prints with -g none.
var trailingDashes = regexp.MustCompile(`(\s+-)*\s*$`)

func stripComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, trailingDashes.ReplaceAllString(l, ""))
	}
	return strings.Join(keep, "\n")
}
