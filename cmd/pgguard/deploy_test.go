package main

// Tests of the deployment files at the repository root (Dockerfile,
// docker-compose.yml, demo/compose-init.sql) against the code: Docker
// itself is not needed, so these hold wherever `go test` runs.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/demo"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// --- docker-compose.yml ------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image           string         `yaml:"image"`
	Build           any            `yaml:"build"`
	Environment     any            `yaml:"environment"`
	Volumes         []string       `yaml:"volumes"`
	Ports           []string       `yaml:"ports"`
	DependsOn       any            `yaml:"depends_on"`
	Command         []string       `yaml:"command"`
	Healthcheck     *composeHealth `yaml:"healthcheck"`
	StopGracePeriod string         `yaml:"stop_grace_period"`
}

type composeHealth struct {
	Test     any    `yaml:"test"`
	Interval string `yaml:"interval"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return cf
}

func (cf composeFile) service(t *testing.T, name string) composeService {
	t.Helper()
	s, ok := cf.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

// env returns a service's environment, given as a map or as a list of
// NAME=value.
func (s composeService) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, item := range e {
			k, v, _ := strings.Cut(fmt.Sprint(item), "=")
			out[k] = v
		}
	default:
		t.Fatalf("environment of unexpected shape %T", e)
	}
	return out
}

// healthTest returns the health check command as a list of words.
func (s composeService) healthTest(t *testing.T) []string {
	t.Helper()
	if s.Healthcheck == nil {
		return nil
	}
	switch v := s.Healthcheck.Test.(type) {
	case string:
		return []string{"CMD-SHELL", v}
	case []any:
		var out []string
		for _, w := range v {
			out = append(out, fmt.Sprint(w))
		}
		return out
	}
	t.Fatalf("healthcheck test of unexpected shape %T", s.Healthcheck.Test)
	return nil
}

// mount is one short-syntax volume: HOST:CONTAINER[:ro].
type mount struct {
	host, container string
	readOnly        bool
}

func (s composeService) mounts(t *testing.T) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			t.Fatalf("volume %q: want HOST:CONTAINER[:ro]", v)
		}
		m := mount{host: parts[0], container: parts[1]}
		if len(parts) == 3 {
			m.readOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
		}
		out = append(out, m)
	}
	return out
}

// hostPath maps a path inside the container to the host path mounted there.
func hostPath(mounts []mount, inContainer string) (string, mount, bool) {
	for _, m := range mounts {
		if inContainer == m.container {
			return m.host, m, true
		}
		if rel, ok := strings.CutPrefix(inContainer, strings.TrimSuffix(m.container, "/")+"/"); ok {
			return filepath.Join(m.host, filepath.FromSlash(rel)), m, true
		}
	}
	return "", mount{}, false
}

// --- Dockerfile ----------------------------------------------------------------

type dockerInstr struct {
	cmd, args string
}

type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

func (st dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range st.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (st dockerStage) last(cmd string) string {
	all := st.all(cmd)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// env returns the stage's ENV settings, in both the NAME=value and the
// legacy "NAME value" forms.
func (st dockerStage) env() map[string]string {
	out := map[string]string{}
	for _, args := range st.all("ENV") {
		fields := strings.Fields(args)
		if len(fields) == 2 && !strings.Contains(fields[0], "=") {
			out[fields[0]] = fields[1]
			continue
		}
		for _, f := range fields {
			if k, v, ok := strings.Cut(f, "="); ok {
				out[k] = strings.Trim(v, `"`)
			}
		}
	}
	return out
}

// parseDockerfile splits the Dockerfile into stages of instructions, with
// continuation lines joined and comments dropped.
func parseDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	var stages []dockerStage
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		cmd, args = strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")
		if cmd == "FROM" {
			st := dockerStage{from: args}
			if img, name, ok := strings.Cut(args, " "); ok {
				st.from = img
				st.name = strings.TrimSpace(strings.TrimPrefix(strings.ToUpper(name), "AS "))
				st.name = strings.ToLower(st.name)
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM", cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, dockerInstr{cmd, args})
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final stage", len(stages))
	}
	return stages
}

// --- the tests -------------------------------------------------------------------

func TestDeployComposeStructure(t *testing.T) {
	cf := loadCompose(t)
	pg, guard := cf.service(t, "postgres"), cf.service(t, "pgguard")

	if !strings.HasPrefix(pg.Image, "postgres:15") {
		t.Errorf("postgres image %q, want the official postgres:15", pg.Image)
	}
	if hc := pg.healthTest(t); len(hc) < 2 || !strings.Contains(strings.Join(hc, " "), "pg_isready") {
		t.Errorf("postgres health check %q does not run pg_isready", hc)
	}
	if len(pg.Ports) > 0 {
		t.Errorf("postgres publishes %v: the only way in must be pgguard", pg.Ports)
	}
	// The init scripts exist, and the schema runs before the logins and rows
	// (the image runs /docker-entrypoint-initdb.d in name order).
	var initScripts []mount
	for _, m := range pg.mounts(t) {
		if strings.HasPrefix(m.container, "/docker-entrypoint-initdb.d/") {
			if _, err := os.Stat(m.host); err != nil {
				t.Errorf("init script %s: %v", m.host, err)
			}
			initScripts = append(initScripts, m)
		}
	}
	sort.Slice(initScripts, func(i, j int) bool { return initScripts[i].container < initScripts[j].container })
	var order []string
	for _, m := range initScripts {
		order = append(order, path.Clean(m.host))
	}
	if want := []string{"demo/schema.sql", "demo/compose-init.sql"}; !slices.Equal(order, want) {
		t.Errorf("init scripts run as %v, want %v", order, want)
	}

	switch b := guard.Build.(type) {
	case string:
		if path.Clean(b) != "." {
			t.Errorf("pgguard build context %q, want the repository root", b)
		}
	case map[string]any:
		if c := fmt.Sprint(b["context"]); path.Clean(c) != "." {
			t.Errorf("pgguard build context %q, want the repository root", c)
		}
	default:
		t.Errorf("pgguard is not built from the Dockerfile (build: %v)", guard.Build)
	}
	deps, ok := guard.DependsOn.(map[string]any)
	if !ok {
		t.Fatalf("pgguard depends_on %v: want the long form with a condition", guard.DependsOn)
	}
	cond, _ := deps["postgres"].(map[string]any)
	if cond == nil || cond["condition"] != "service_healthy" {
		t.Errorf("pgguard depends_on postgres = %v, want condition service_healthy", deps["postgres"])
	}
	// The second lock is on before pgguard serves: the grants service
	// applies the policy's grants and must have succeeded.
	cond, _ = deps["grants"].(map[string]any)
	if cond == nil || cond["condition"] != "service_completed_successfully" {
		t.Errorf("pgguard depends_on grants = %v, want condition service_completed_successfully", deps["grants"])
	}
	if g := cf.service(t, "grants"); len(g.Command) < 2 || g.Command[0] != "grants" || !slices.Contains(g.Command, "--apply") {
		t.Errorf("the grants service runs %q, want pgguard grants --apply", g.Command)
	}

	env := guard.env(t)
	metrics := env["PGGUARD_METRICS"]
	_, metricsPort, err := net.SplitHostPort(metrics)
	if err != nil {
		t.Fatalf("PGGUARD_METRICS %q: %v", metrics, err)
	}
	hc := guard.healthTest(t)
	if len(hc) < 2 {
		t.Fatalf("pgguard has no health check")
	}
	var probe *url.URL
	for _, w := range hc {
		if u, err := url.Parse(w); err == nil && u.Scheme == "http" {
			probe = u
		}
	}
	if probe == nil || probe.Path != "/healthz" || probe.Port() != metricsPort {
		t.Errorf("pgguard health check %q must ask /healthz on the metrics port %s", hc, metricsPort)
	}

	// The policy folder is mounted read-only, as a folder, and holds the
	// files at the paths pgguard is told to use.
	mounts := guard.mounts(t)
	final := parseDockerfile(t)
	imageEnv := final[len(final)-1].env()
	for _, name := range []string{"PGGUARD_MODEL", "PGGUARD_POLICY"} {
		p := env[name]
		if p == "" {
			p = imageEnv[name]
		}
		if p == "" {
			t.Errorf("%s is set neither in docker-compose.yml nor in the Dockerfile", name)
			continue
		}
		host, m, ok := hostPath(mounts, p)
		if !ok {
			t.Errorf("%s=%s is not inside a mounted folder: edits on the host would never reach pgguard", name, p)
			continue
		}
		if p == m.container {
			t.Errorf("%s: %s is mounted as a single file; mount its folder so rename-saves are seen", name, p)
		}
		if fi, err := os.Stat(m.host); err != nil || !fi.IsDir() {
			t.Errorf("mount %s:%s: the host side must be a folder (%v)", m.host, m.container, err)
		}
		if !m.readOnly {
			t.Errorf("mount %s:%s should be read-only", m.host, m.container)
		}
		if _, err := os.Stat(host); err != nil {
			t.Errorf("%s=%s maps to %s on the host: %v", name, p, host, err)
		}
	}

	published := map[string]bool{}
	for _, p := range guard.Ports {
		parts := strings.Split(p, ":")
		published[parts[len(parts)-1]] = true
	}
	_, listenPort, _ := net.SplitHostPort(imageEnv["PGGUARD_LISTEN"])
	if l := env["PGGUARD_LISTEN"]; l != "" {
		_, listenPort, _ = net.SplitHostPort(l)
	}
	for _, port := range []string{listenPort, metricsPort} {
		if !published[port] {
			t.Errorf("pgguard does not publish port %s (ports %v)", port, guard.Ports)
		}
	}

	// Docker must wait longer than pgguard's own grace period before it
	// kills the container.
	var c serveConfig
	serveFlags(&c)
	if env["PGGUARD_SHUTDOWN_GRACE"] != "" {
		if c.shutdownGrace, err = time.ParseDuration(env["PGGUARD_SHUTDOWN_GRACE"]); err != nil {
			t.Fatal(err)
		}
	}
	stop, err := time.ParseDuration(guard.StopGracePeriod)
	if err != nil || stop <= c.shutdownGrace {
		t.Errorf("pgguard stop_grace_period %q must exceed the shutdown grace %s", guard.StopGracePeriod, c.shutdownGrace)
	}
}

// deployEnv is the environment pgguard starts with: the image's ENV, then
// the compose file's environment over it.
func deployEnv(t *testing.T) (map[string]string, map[string]string) {
	t.Helper()
	stages := parseDockerfile(t)
	image := stages[len(stages)-1].env()
	merged := map[string]string{}
	for k, v := range image {
		merged[k] = v
	}
	for k, v := range loadCompose(t).service(t, "pgguard").env(t) {
		merged[k] = v
	}
	return image, merged
}

func TestDeployEnvironmentNamesServeFlags(t *testing.T) {
	known := map[string]string{}
	serveFlags(&serveConfig{}).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = f.Name })

	// Every PGGUARD_ variable anywhere in the two files, commented-out
	// examples included, must be a flag of serve.
	re := regexp.MustCompile(`PGGUARD_[A-Z0-9_]+`)
	for _, file := range []string{"Dockerfile", "docker-compose.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(b), -1) {
			if _, ok := known[name]; !ok {
				t.Errorf("%s names %s, which is no flag of pgguard serve", file, name)
			}
		}
	}

	// The environment the container starts with parses and validates.
	_, env := deployEnv(t)
	for name, v := range env {
		if strings.HasPrefix(name, "PGGUARD_") {
			t.Setenv(name, v)
		}
	}
	var c serveConfig
	if _, err := parseFlags(serveFlags(&c), nil); err != nil {
		t.Fatalf("the deployment's environment does not parse: %v", err)
	}
	if err := c.validate(); err != nil {
		t.Fatalf("the deployment's environment does not validate: %v", err)
	}
	if _, err := newLogger(c.logLevel, c.logFormat, io.Discard); err != nil {
		t.Fatalf("log settings: %v", err)
	}
	if host, _, err := net.SplitHostPort(c.listen); err != nil || host != "0.0.0.0" {
		t.Errorf("listen %q: in a container pgguard must listen on 0.0.0.0", c.listen)
	}
	if c.catalogURL == "" {
		t.Errorf("no PGGUARD_CATALOG_URL: the catalog would be read with the upstream URL, which names no user")
	}
}

func TestDeployDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]

	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	// The official images set GOTOOLCHAIN=local: the image's Go must be at
	// least what go.mod asks for, so the tag must name a patch release.
	image := regexp.MustCompile(`^golang:(\d+)\.(\d+)\.(\d+)-`).FindStringSubmatch(build.from)
	if image == nil {
		t.Fatalf("build stage FROM %s, want golang:X.Y.Z-...: a tag without the patch release may be older than go.mod needs", build.from)
	}
	for _, re := range []string{`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`, `(?m)^toolchain go(\d+)\.(\d+)(?:\.(\d+))?\s*$`} {
		need := regexp.MustCompile(re).FindSubmatch(gomod)
		if need == nil {
			continue
		}
		for i := 1; i <= 3; i++ {
			have, _ := strconv.Atoi(image[i])
			want, _ := strconv.Atoi(string(need[i]))
			if have > want {
				break
			}
			if have < want {
				t.Errorf("build stage FROM %s is older than go.mod's %q", build.from, need[0])
				break
			}
		}
	}
	if build.env()["CGO_ENABLED"] != "1" {
		t.Errorf("build stage: CGO_ENABLED must be 1, pg_query is C")
	}
	var goBuild string
	for _, run := range build.all("RUN") {
		if strings.Contains(run, "go build") {
			goBuild = run
		}
	}
	for _, want := range []string{"netgo", "osusergo", "-linkmode external", "-static", "./cmd/pgguard"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build in the build stage lacks %q: %s", want, goBuild)
		}
	}

	user := final.last("USER")
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if ep := final.last("ENTRYPOINT"); ep != `["pgguard"]` {
		t.Errorf("ENTRYPOINT %s, want [\"pgguard\"]", ep)
	}
	if cmd := final.last("CMD"); cmd != `["serve"]` {
		t.Errorf("CMD %s, want [\"serve\"]", cmd)
	}
	copied := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		if slices.Contains(f, "model.conf") && slices.Contains(f, "policy.csv") && f[len(f)-1] == "/etc/pgguard/" {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not copy model.conf and policy.csv to /etc/pgguard/")
	}
	env := final.env()
	want := map[string]string{
		"PGGUARD_LISTEN": "0.0.0.0:6432",
		"PGGUARD_MODEL":  "/etc/pgguard/model.conf",
		"PGGUARD_POLICY": "/etc/pgguard/policy.csv",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("ENV %s=%q, want %q", k, env[k], v)
		}
	}
	exposed := strings.Fields(strings.Join(final.all("EXPOSE"), " "))
	for _, port := range []string{"6432", "9187"} {
		if !slices.Contains(exposed, port) {
			t.Errorf("final stage does not EXPOSE %s", port)
		}
	}

	// What the compose health check runs must be in the image.
	hc := loadCompose(t).service(t, "pgguard").healthTest(t)
	if len(hc) >= 2 && hc[0] == "CMD" && hc[1] != "pgguard" {
		installed := strings.Join(final.all("RUN"), " ")
		if !strings.Contains(installed, " "+hc[1]) {
			t.Errorf("the health check runs %s, which the final stage does not install", hc[1])
		}
	}

	ignore, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		switch strings.TrimSpace(line) {
		case "model.conf", "policy.csv", "go.mod", "go.sum", "*.go", "cmd", "demo":
			t.Errorf(".dockerignore leaves out %s, which the build needs", line)
		}
	}
}

func TestDeployComposeInitSQL(t *testing.T) {
	b, err := os.ReadFile("demo/compose-init.sql")
	if err != nil {
		t.Fatal(err)
	}
	sql := string(b)
	usage := schemaUsageGrants(t, sql)
	for _, l := range demo.Logins {
		if !strings.Contains(sql, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s';", l.User, demo.Password)) {
			t.Errorf("compose-init.sql does not create login %s with the demo password", l.User)
		}
		if !usage[l.User]["crm"] || !usage[l.User]["hr"] {
			t.Errorf("compose-init.sql grants %s no USAGE on the demo schemas crm and hr", l.User)
		}
	}
	cat, err := url.Parse(loadCompose(t).service(t, "pgguard").env(t)["PGGUARD_CATALOG_URL"])
	if err != nil || cat.User == nil {
		t.Fatalf("PGGUARD_CATALOG_URL names no role: %v", err)
	}
	if !strings.Contains(sql, "CREATE ROLE "+cat.User.Username()+" LOGIN") {
		t.Errorf("compose-init.sql does not create the catalog role %s", cat.User.Username())
	}
	// Invented data: every BSN-shaped value must fail the eleven-test.
	bsns := nineDigitStrings(t, sql)
	if len(bsns) == 0 {
		t.Fatal("compose-init.sql holds no BSN-shaped values")
	}
	for _, v := range bsns {
		if demo.ValidBSN(v) {
			t.Errorf("compose-init.sql holds %s, which passes the BSN eleven-test", v)
		}
	}
}

// schemaUsageGrants reads, with PostgreSQL's parser, which role was granted
// USAGE on which schema.
func schemaUsageGrants(t *testing.T, sql string) map[string]map[string]bool {
	t.Helper()
	tree, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("compose-init.sql does not parse: %v", err)
	}
	out := map[string]map[string]bool{}
	for _, raw := range tree.GetStmts() {
		g := raw.GetStmt().GetGrantStmt()
		if g == nil || !g.GetIsGrant() || g.GetObjtype() != pg_query.ObjectType_OBJECT_SCHEMA || !grantsUsage(g) {
			continue
		}
		for _, grantee := range g.GetGrantees() {
			role := grantee.GetRoleSpec().GetRolename()
			if out[role] == nil {
				out[role] = map[string]bool{}
			}
			for _, obj := range g.GetObjects() {
				out[role][obj.GetString_().GetSval()] = true
			}
		}
	}
	return out
}

func grantsUsage(g *pg_query.GrantStmt) bool {
	if len(g.GetPrivileges()) == 0 { // ALL
		return true
	}
	for _, p := range g.GetPrivileges() {
		if p.GetAccessPriv().GetPrivName() == "usage" {
			return true
		}
	}
	return false
}

// nineDigitStrings lists the string constants of sql that are nine digits,
// from PostgreSQL's own lexer.
func nineDigitStrings(t *testing.T, sql string) []string {
	t.Helper()
	scan, err := pg_query.Scan(sql)
	if err != nil {
		t.Fatalf("compose-init.sql does not scan: %v", err)
	}
	var out []string
	for _, tok := range scan.GetTokens() {
		if tok.GetToken() != pg_query.Token_SCONST {
			continue
		}
		text := strings.Trim(sql[tok.GetStart():tok.GetEnd()], "'")
		if len(text) == 9 && strings.Trim(text, "0123456789") == "" {
			out = append(out, text)
		}
	}
	return out
}

// TestDeployComposeSetupEndToEnd loads the compose database on a throwaway
// PostgreSQL and runs pgguard with the compose environment in front of it:
// the catalog role suffices, the logins work, and the policy applies.
func TestDeployComposeSetupEndToEnd(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	initSQL, err := os.ReadFile("demo/compose-init.sql")
	if err != nil {
		t.Fatal(err)
	}
	pg.MustExec(t, "postgres", demo.Schema)
	pg.MustExec(t, "postgres", string(initSQL))
	composeGrants(t, pg)

	_, env := deployEnv(t)
	for name, v := range env {
		if strings.HasPrefix(name, "PGGUARD_") {
			t.Setenv(name, v)
		}
	}
	var c serveConfig
	if _, err := parseFlags(serveFlags(&c), nil); err != nil {
		t.Fatal(err)
	}
	// The compose network's host names and the container's paths, mapped to
	// this machine.
	c.upstream = strings.Replace(c.upstream, "postgres:5432", pg.Addr(), 1)
	c.catalogURL = strings.Replace(c.catalogURL, "@postgres:5432", "@"+pg.Addr(), 1)
	mounts := loadCompose(t).service(t, "pgguard").mounts(t)
	var ok bool
	if c.model, _, ok = hostPath(mounts, c.model); !ok {
		t.Fatalf("model %s is not mounted", c.model)
	}
	if c.policy, _, ok = hostPath(mounts, c.policy); !ok {
		t.Fatalf("policy %s is not mounted", c.policy)
	}
	c.listen, c.metrics = "127.0.0.1:0", "127.0.0.1:0"
	c.shutdownGrace = time.Second

	log, _ := newLogger("error", "console", io.Discard)
	a, err := build(&c, log)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := listen(&c)
	if err != nil {
		t.Fatal(err)
	}
	ln, metricsAddr := ls.clients, ls.metrics.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serveOn(ctx, ls, &c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.close()
	})

	query := func(user, purpose, sql string) (int, error) {
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable options='-c pgguard.purpose=%s'",
			host, port, user, demo.Password, purpose)
		qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer qcancel()
		conn, err := pgx.Connect(qctx, dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(qctx)
		rows, err := conn.Query(qctx, sql)
		if err != nil {
			return 0, err
		}
		n := 0
		for rows.Next() {
			n++
		}
		return n, rows.Err()
	}
	if n, err := query("sales_app", "order_fulfilment", "SELECT first_name, email, city FROM crm.customers"); err != nil || n == 0 {
		t.Errorf("sales_app reading contact details: %d rows, %v", n, err)
	}
	if n, err := query("payroll_app", "payroll", "SELECT e.last_name, s.gross_monthly FROM hr.employees e JOIN hr.salaries s ON s.employee_id = e.id"); err != nil || n == 0 {
		t.Errorf("payroll_app reading salaries: %d rows, %v", n, err)
	}
	var pe *pgconn.PgError
	if _, err := query("sales_app", "order_fulfilment", "SELECT gross_monthly FROM hr.salaries"); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("sales_app reading salaries: %v, want 42501", err)
	}
	// Around pgguard, PostgreSQL's own privileges refuse it as well.
	direct, err := pgx.Connect(context.Background(), pg.URL("sales_app", demo.Password, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	if _, err := direct.Exec(context.Background(), "SELECT iban FROM crm.customers"); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("sales_app reading IBANs directly on PostgreSQL: %v, want 42501 from PostgreSQL", err)
	}

	// The compose health check's URL, and the metrics beside it.
	for p, want := range map[string]string{"/healthz": "ok", "/metrics": "pgguard_statements_total"} {
		resp, err := http.Get("http://" + metricsAddr + p)
		if err != nil {
			t.Errorf("GET %s: %v", p, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, body lacks %q", p, resp.Status, want)
		}
	}
}

// composeGrants runs the compose file's grants service as it would run in
// its container: its command, with the compose network's host name, the
// superuser's credentials and the container's paths mapped to this machine.
func composeGrants(t *testing.T, pg *pgtest.Server) {
	t.Helper()
	g := loadCompose(t).service(t, "grants")
	mounts := g.mounts(t)
	args := slices.Clone(g.Command[1:])
	for i, a := range args {
		if u, err := url.Parse(a); err == nil && u.Host == "postgres:5432" {
			args[i] = pg.URL(pgtest.Superuser, "", strings.TrimPrefix(u.Path, "/"))
		} else if host, _, ok := hostPath(mounts, a); ok && strings.HasPrefix(a, "/") {
			args[i] = host
		}
	}
	var out strings.Builder
	code, err := runGrants(context.Background(), args, &out)
	if err != nil || code != exitOK {
		t.Fatalf("the grants service (pgguard grants %q): exit %d, %v\n%s", args, code, err, out.String())
	}
	// grants check, given the same flags but --apply, finds nothing to report.
	out.Reset()
	check := append([]string{"check"}, slices.DeleteFunc(args, func(a string) bool { return a == "--apply" })...)
	if code, err := runGrants(context.Background(), check, &out); err != nil || code != exitOK {
		t.Fatalf("pgguard grants %q after the grants service: exit %d, %v\n%s", check, code, err, out.String())
	}
}

// TestDeployOperationsDocumentsEverything: every flag of serve, with its
// environment variable, and every pgguard metric has its place in
// docs/operations.md.
func TestDeployOperationsDocumentsEverything(t *testing.T) {
	b, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	serveFlags(&serveConfig{}).VisitAll(func(f *flag.Flag) {
		for _, name := range []string{"`--" + f.Name + "`", "`" + envName(f.Name) + "`"} {
			if !strings.Contains(doc, name) {
				t.Errorf("docs/operations.md does not document %s", name)
			}
		}
	})
	reg := prometheus.NewRegistry()
	alert.NewMetrics(reg)
	d, err := alert.New(alert.Config{WebhookURL: "http://127.0.0.1:1/"}, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if !strings.Contains(doc, "`"+mf.GetName()+"`") {
			t.Errorf("docs/operations.md does not document metric %s", mf.GetName())
		}
	}
}

// TestDeployDocsNameRealMetricsAndFlags keeps the documentation and the
// Grafana dashboard honest: every pgguard metric, flag and PGGUARD_
// variable they name exists.
func TestDeployDocsNameRealMetricsAndFlags(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := alert.NewMetrics(reg)
	m.Denials.WithLabelValues("role", "category").Inc() // vectors without preset labels
	m.SetPolicyVersion("version")
	m.SetPolicyInfo("1", "checksum", time.Now())
	m.SetPolicyStore("store", true, time.Now())
	d, err := alert.New(alert.Config{WebhookURL: "http://127.0.0.1:1/"}, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]bool{}
	for _, mf := range families {
		metrics[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				metrics[mf.GetName()+suffix] = true
			}
		}
	}
	// The catalog and replica roles of the examples, the department and
	// purpose roles' prefixes, and the policy store's NOTIFY channel.
	notMetrics := map[string]bool{"pgguard_catalog": true, "pgguard_dept_": true, "pgguard_purpose_": true, "pgguard_replica": true, "pgguard_policy": true}

	flags := map[string]bool{}
	add := func(fs *flag.FlagSet) { fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = true }) }
	for _, fs := range commandFlagSets() {
		add(fs)
	}
	otherTools := map[string]bool{"build": true, "rm": true, "schema-only": true} // docker compose, pg_dump
	flags["help"], flags["version"] = true, true                                  // pgguard's own, outside the flag sets
	add(matrixFlags(&matrixConfig{}))
	flags["apply"], flags["role-prefix"] = true, true // grants
	// Besides serve's flags: the knobs of the longer test runs.
	env := map[string]bool{"PGGUARD_DIFFERENTIAL_STATEMENTS": true, "PGGUARD_SQLSMITH_STATEMENTS": true, "PGGUARD_ORACLE_HISTORIES": true, "PGGUARD_PROPERTY_POLICIES": true}
	serveFlags(&serveConfig{}).VisitAll(func(f *flag.Flag) { env[envName(f.Name)] = true })

	files := []string{"README.md", "docs/policy-guide.md", "docs/operations.md", "docs/security-model.md", "docs/reference.md", "docs/grafana-dashboard.json"}
	metricRe := regexp.MustCompile(`\bpgguard_[a-z_]+`)
	flagRe := regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z][a-z0-9-]*)`)
	envRe := regexp.MustCompile(`PGGUARD_[A-Z0-9_]+`)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, name := range metricRe.FindAllString(text, -1) {
			if !metrics[name] && !notMetrics[name] {
				t.Errorf("%s names metric %s, which pgguard does not export", file, name)
			}
		}
		for _, m := range flagRe.FindAllStringSubmatch(text, -1) {
			if !flags[m[1]] && !otherTools[m[1]] {
				t.Errorf("%s names flag --%s, which no pgguard command has", file, m[1])
			}
		}
		for _, name := range envRe.FindAllString(text, -1) {
			if !env[name] {
				t.Errorf("%s names %s, which is no flag of pgguard serve", file, name)
			}
		}
	}

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !metricRe.MatchString(q.Expr) {
				t.Errorf("dashboard panel %q queries no pgguard metric: %s", p.Title, q.Expr)
			}
			queries++
		}
	}
	if queries == 0 {
		t.Error("the dashboard has no queries")
	}
}

// TestReferenceDocumentsEveryFlag: every flag of every command, and the
// environment variable of every serve flag, is in docs/reference.md.
func TestReferenceDocumentsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for cmd, fs := range commandFlagSets() {
		if !strings.Contains(doc, "pgguard "+cmd) {
			t.Errorf("docs/reference.md does not document the command pgguard %s", cmd)
		}
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(doc, "`--"+f.Name+"`") {
				t.Errorf("docs/reference.md does not document --%s of pgguard %s", f.Name, cmd)
			}
		})
	}
	serveFlags(&serveConfig{}).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(doc, "`"+envName(f.Name)+"`") {
			t.Errorf("docs/reference.md does not document %s", envName(f.Name))
		}
	})
	for _, kind := range []alert.Kind{alert.KindQueryBlocked, alert.KindQueryFlagged, alert.KindPolicyReloaded,
		alert.KindPolicyReloadFailed, alert.KindCatalogUnavailable, alert.KindQueryBlockedByDatabase, alert.KindGrantsDrift,
		alert.KindPolicyStale, alert.KindPolicyConfirmed} {
		if !strings.Contains(doc, "`"+string(kind)+"`") {
			t.Errorf("docs/reference.md does not document the alert event %s", kind)
		}
	}
	fields := map[string]any{}
	full := alert.Event{Count: 2, FirstSeen: time.Now(), LastSeen: time.Now(), Error: "x", Change: &alert.PolicyChange{}}
	js, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	for name := range fields {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/reference.md does not document the alert field %s", name)
		}
	}
}

// trackedFiles lists the files git tracks, or every file under the
// repository root when git cannot say.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("git", "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	}
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNoPathOutsideRepository: no file of the repository refers to a file
// outside it, by a relative path that climbs out, by an absolute path of a
// workplace, or by the name of a document the repository does not hold.
func TestNoPathOutsideRepository(t *testing.T) {
	relative := regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])((?:\.\./)+[A-Za-z0-9_.*-][A-Za-z0-9_.*/-]*)`)
	// Built from parts, so that this file does not match them itself.
	outside := regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])(` + "shared" + `/|/work/[a-z]|/home/[a-z]|/Users/[A-Za-z]|` +
		`CONTRACT` + `\.md|contract` + ` §)`)
	files := trackedFiles(t)
	if len(files) < 50 {
		t.Fatalf("only %d files found", len(files))
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted in the work tree
			}
			t.Fatal(err)
		}
		if strings.IndexByte(string(b), 0) >= 0 {
			continue // binary
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := outside.FindStringSubmatch(line); m != nil {
				t.Errorf("%s:%d: refers outside the repository (%q): %s", file, i+1, m[1], strings.TrimSpace(line))
			}
			for _, m := range relative.FindAllStringSubmatch(line, -1) {
				if p := path.Join(path.Dir(file), m[1]); p == ".." || strings.HasPrefix(p, "../") {
					t.Errorf("%s:%d: %s leads outside the repository", file, i+1, m[1])
				}
			}
		}
	}
}

// TestReadmeStatesWhatCIRuns: every command .ci/run runs after installing
// packages is in the README, in the same order, and the README's test
// command is the one CI runs.
func TestReadmeStatesWhatCIRuns(t *testing.T) {
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var ciCommands []string
	for _, line := range strings.Split(string(ci), "\n") {
		if strings.HasPrefix(line, "go ") {
			ciCommands = append(ciCommands, strings.TrimSpace(line))
		}
	}
	if len(ciCommands) == 0 || !strings.HasPrefix(ciCommands[len(ciCommands)-1], "go test ") {
		t.Fatalf(".ci/run's go commands %q do not end with go test", ciCommands)
	}
	var readmeCommands []string
	for _, line := range strings.Split(string(readme), "\n") {
		if c, ok := strings.CutPrefix(line, "    go "); ok {
			readmeCommands = append(readmeCommands, "go "+strings.TrimSpace(c))
		}
	}
	at := 0
	for _, c := range ciCommands {
		i := slices.Index(readmeCommands[at:], c)
		if i < 0 {
			t.Errorf("the README does not state %q, which .ci/run runs (in this order: %q)", c, ciCommands)
			continue
		}
		at += i + 1
	}
	if !slices.Contains(readmeCommands, ciCommands[len(ciCommands)-1]) {
		t.Errorf("the README's test command is not CI's %q", ciCommands[len(ciCommands)-1])
	}
}
