package guard

import "testing"

func TestStartupOption(t *testing.T) {
	cases := []struct {
		options, want string
		found         bool
	}{
		{"-c pgguard.purpose=payroll", "payroll", true},
		{"-cpgguard.purpose=payroll", "payroll", true},
		{"--pgguard.purpose=payroll", "payroll", true},
		{"-c search_path=hr -c pgguard.purpose=sick_leave_admin", "sick_leave_admin", true},
		{`-c pgguard.purpose=two\ words`, "two words", true},
		{"-c PGGUARD.PURPOSE=payroll", "payroll", true},
		{"-c application_name=x", "", false},
		{"", "", false},
		{"-c", "", false},
		{"pgguard.purpose=payroll", "", false}, // not an option switch
	}
	for _, tc := range cases {
		got, found := startupOption(tc.options, PurposeParameter)
		if got != tc.want || found != tc.found {
			t.Errorf("startupOption(%q) = %q, %v; want %q, %v", tc.options, got, found, tc.want, tc.found)
		}
	}
}

func TestSettingFollowsPostgreSQLSemantics(t *testing.T) {
	type step struct {
		do   func(s *setting)
		want string
	}
	set := func(v string, local bool) func(*setting) { return func(s *setting) { s.set(v, local) } }
	cases := []struct {
		name  string
		steps []step
	}{
		{"session SET stays after commit", []step{
			{(*setting).begin, "boot"}, {set("a", false), "a"}, {func(s *setting) { s.end(true) }, "a"}}},
		{"rolled-back SET is undone", []step{
			{(*setting).begin, "boot"}, {set("a", false), "a"}, {func(s *setting) { s.end(false) }, "boot"}}},
		{"SET LOCAL ends with the transaction", []step{
			{(*setting).begin, "boot"}, {set("l", true), "l"}, {func(s *setting) { s.end(true) }, "boot"}}},
		{"SET after SET LOCAL wins for the session", []step{
			{(*setting).begin, "boot"}, {set("l", true), "l"}, {set("s", false), "s"}, {func(s *setting) { s.end(true) }, "s"}}},
		{"RESET returns to the startup value", []step{
			{set("a", false), "a"}, {(*setting).reset, "boot"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetting("boot", true)
			for i, st := range tc.steps {
				st.do(&s)
				if got, _ := s.current(); got != st.want {
					t.Fatalf("step %d: %q, want %q", i, got, st.want)
				}
			}
		})
	}
}

func TestEndReportsChange(t *testing.T) {
	s := newSetting("", true)
	s.begin()
	if s.end(true) {
		t.Fatal("an empty transaction changed the setting")
	}
	s.begin()
	s.set("x", true)
	if !s.end(true) {
		t.Fatal("the end of SET LOCAL did not count as a change")
	}
}

func TestVerdictCacheStaysBounded(t *testing.T) {
	c := newVerdictCache(10)
	k := contextKey{user: "u"}
	tbl := c.forContext(k)
	first := tbl
	for i := 0; i < 35; i++ {
		if tbl.dropped.Load() { // what a session does before its lookup
			tbl = c.forContext(k)
		}
		c.put(tbl, string(rune('a'+i)), &verdict{})
	}
	total := 0
	for _, t := range c.byContext {
		total += len(t.m)
	}
	if total > 10 || len(first.m) != 0 || !first.dropped.Load() {
		t.Fatalf("%d entries kept (bound 10); first table len %d dropped %v", total, len(first.m), first.dropped.Load())
	}
}

func TestConcurrentSessionsAnalyseANewTextOnce(t *testing.T) {
	tbl := &textVerdicts{m: make(map[string]*verdict)}
	f, leader := tbl.join([]byte("SELECT 1"))
	if !leader {
		t.Fatal("first caller does not lead")
	}
	f2, leader2 := tbl.join([]byte("SELECT 1"))
	if leader2 || f2 != f {
		t.Fatal("second caller started its own analysis")
	}
	v := &verdict{cacheable: true}
	go tbl.land("SELECT 1", f, v)
	<-f2.done
	if f2.v != v {
		t.Fatal("follower did not get the leader's verdict")
	}
	if _, leader3 := tbl.join([]byte("SELECT 1")); !leader3 {
		t.Fatal("a landed flight still blocks new analyses")
	}
}

func TestStartupSettingPrefersPacketParameters(t *testing.T) {
	params := map[string]string{
		"user": "u", "options": "-c search_path=crm -c pgguard.purpose=payroll",
		"search_path": "hr", "Role": "hr_admin",
	}
	for _, tc := range []struct {
		name, want string
		found      bool
	}{
		{"search_path", "hr", true},         // the packet parameter wins
		{PurposeParameter, "payroll", true}, // from options
		{"role", "hr_admin", true},
		{"session_authorization", "", false},
	} {
		got, found := startupSetting(params, tc.name)
		if got != tc.want || found != tc.found {
			t.Errorf("startupSetting(%s) = %q, %v; want %q, %v", tc.name, got, found, tc.want, tc.found)
		}
	}
}
