package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The tail of a cancel's latency on a host that runs PostgreSQL and a
// proxy side by side depends on how Linux groups tasks for scheduling.
// PostgreSQL makes every backend the leader of a session of its own, so
// with autogroup (kernel.sched_autogroup_enabled, on by default in most
// distributions) each backend is a scheduling group of its own; autogroup
// applies only to tasks in the root CPU cgroup, which containers and
// systemd services with a CPU weight leave. The report says which case a
// run was.

const autogroupKnob = "/proc/sys/kernel/sched_autogroup_enabled"

// schedulingContext describes the autogroup setting and this process's CPU
// cgroup, for the report.
func schedulingContext() string {
	ag := "unknown"
	if b, err := os.ReadFile(autogroupKnob); err == nil {
		ag = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("kernel.sched_autogroup_enabled=%s, CPU cgroup %s", ag, cpuCgroup())
}

// cpuCgroup is this process's cgroup for the cpu controller (cgroup v1) or
// its unified cgroup (v2), "/" being the root.
func cpuCgroup() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "unknown"
	}
	unified := ""
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			unified = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" {
				return parts[2]
			}
		}
	}
	if unified != "" {
		return unified
	}
	return "unknown"
}

// enterCgroup moves this process, and so everything it starts later, into
// the cgroup folder dir (created if missing), as a container runtime, or
// systemd for a unit with a CPU weight, places a service.
func enterCgroup(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	procs := filepath.Join(dir, "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("enter cgroup %s: %w", dir, err)
	}
	return nil
}
