package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

const dialplanFile = "testdata/dialplan/extensions.conf"

// dialplanSupervisors places the supervisors' phones in their contexts,
// as pjsip.conf would: 3001 is an agent who also leads support.
var dialplanSupervisors = map[string][]string{
	"sup-sales":   {"lead-sales"},
	"sup-support": {"3001"},
	"sup-qa":      {"qa1"},
	"sup-all":     {"boss"},
}

// mustImportDialplan imports the test dialplan, writes the proposal and
// reads it back as `profiles validate` would, returning the import and
// the policy read back.
func mustImportDialplan(tb testing.TB) (*DialplanImport, enforce.Policy) {
	tb.Helper()
	data, err := os.ReadFile(dialplanFile)
	if err != nil {
		tb.Fatal(err)
	}
	im, err := ImportDialplan([]DialplanFile{{Name: "extensions.conf", Data: data}}, dialplanSupervisors)
	if err != nil {
		tb.Fatalf("ImportDialplan: %v", err)
	}
	out, err := MarshalDialplanImport(im)
	if err != nil {
		tb.Fatalf("MarshalDialplanImport: %v", err)
	}
	path := tb.TempDir() + "/proposed.yaml"
	if err := os.WriteFile(path, out, 0o600); err != nil {
		tb.Fatal(err)
	}
	p, err := LoadProfiles(path)
	if err != nil {
		tb.Fatalf("the proposal does not load: %v\n%s", err, out)
	}
	return im, p
}

func TestImportDialplanDecisions(t *testing.T) {
	im, p := mustImportDialplan(t)
	if !policiesEqual(p, im.Policy) {
		t.Fatalf("the written proposal reads back as another policy\n got: %+v\nwant: %+v", p, im.Policy)
	}
	snap, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	const (
		listen  = enforce.MonitorListen
		whisper = enforce.MonitorWhisper
		barge   = enforce.MonitorBarge
	)
	// Each row is what the dialplan allows the supervisor's phone, read
	// from the line named in why: the agents are 2001 and 2002 (SPYGROUP
	// sales), 2003 (support) and 3001 (no group); billing-q calls carry
	// SPYGROUP billing.
	cases := []struct {
		user   string
		action enforce.Action
		agent  string
		queue  string
		allow  bool
		why    string
	}{
		{"lead-sales", listen, "2001", "", true, "*101 ChanSpy(,qg(sales))"},
		{"lead-sales", listen, "2002", "", true, "*101: 2002 is in sales (and vip)"},
		{"lead-sales", whisper, "2002", "", true, "*102 ChanSpy(PJSIP/,wg(sales))"},
		{"lead-sales", barge, "2001", "", false, "no line of sup-sales has B or d"},
		{"lead-sales", listen, "2003", "", false, "2003 is in support, not sales"},
		{"lead-sales", whisper, "3001", "", false, "3001 carries no SPYGROUP"},
		{"lead-sales", listen, "3001", "billing-q", true, "*107 ChanSpy(,bqg(billing)), included from spy-billing"},
		{"lead-sales", whisper, "3001", "billing-q", false, "*107 has no w"},
		{"3001", barge, "2003", "", true, "*103 ChanSpy(,Be(PJSIP/2003:PJSIP/3001:2002))"},
		{"3001", whisper, "2003", "", true, "*104 ExtenSpy(2003@agents,w)"},
		{"3001", listen, "2002", "", false, "*103's \"2002\" is no channel name: Asterisk matches nothing"},
		{"3001", whisper, "2001", "", true, "*108 ChanSpy(PJSIP/2001,wr(spool))"},
		{"3001", barge, "2001", "", false, "*108 has no B"},
		{"qa1", listen, "2002", "", true, "_*105XXXX ExtenSpy(${EXTEN:4}@agents,qv(2))"},
		{"qa1", whisper, "2002", "", false, "_*105XXXX has no w"},
		{"qa1", barge, "3001", "", true, "_*1063XXX ChanSpy(PJSIP/${EXTEN:4},dqE): d switches to barge"},
		{"qa1", whisper, "3001", "", true, "_*1063XXX: d switches to whisper"},
		{"qa1", barge, "2001", "", false, "_*1063XXX reaches PJSIP/3xxx only"},
		{"boss", listen, "2003", "", true, "*109 ChanSpy(all,qX)"},
		{"boss", barge, "2002", "", true, "*110 ExecIf(...?ChanSpy(,B))"},
		{"boss", whisper, "2002", "", false, "B without w or d offers no whisper"},
		{"2001", listen, "2002", "", false, "an agent's phone reaches no spy line"},
		{"mallory", listen, "2001", "", false, "a phone the dialplan does not place"},
	}
	now := time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		name := tc.user + " " + tc.action.String() + " " + tc.agent
		if tc.queue != "" {
			name += " in " + tc.queue
		}
		t.Run(name, func(t *testing.T) {
			d := enforce.Decide(snap, &enforce.Request{User: tc.user, Action: tc.action, Agent: tc.agent, Queue: tc.queue}, now)
			if d.Allow != tc.allow {
				t.Errorf("got %s (%s), the dialplan says %v: %s", d.Verdict(), d.Reason, tc.allow, tc.why)
			}
			if d.Allow && d.NotifyTarget {
				t.Errorf("notify_target set: ChanSpy never plays a tone to the agent")
			}
		})
	}
}

func TestImportDialplanReport(t *testing.T) {
	im, _ := mustImportDialplan(t)
	byLine := map[int][]DialplanNote{}
	for _, n := range im.Notes {
		if n.File == "extensions.conf" {
			byLine[n.Line] = append(byLine[n.Line], n)
		}
	}
	has := func(line int, kind NoteKind, substr string) bool {
		for _, n := range byLine[line] {
			if n.Kind == kind && strings.Contains(n.Msg, substr) {
				return true
			}
		}
		return false
	}
	t.Run("every line it could not translate is named with why", func(t *testing.T) {
		for line, why := range map[int]string{
			49: "${SPYTARGET}",
			50: "private whisper",
			51: "o lets the supervisor hear the spied channel only",
			52: "no agent the dialplan names",
			53: "${ARG1}",
			54: "${GROUP}",
			55: "matches no channel",
			56: "unique id",
			57: "ExecIf(...) is not read",
			58: "Set(...) is not read",
			61: "outside any extension",
		} {
			if !has(line, NoteNotTranslated, why) {
				t.Errorf("line %d: no `not translated` note saying %q; notes: %v", line, why, byLine[line])
			}
		}
	})
	t.Run("translated lines are not reported as untranslated", func(t *testing.T) {
		for _, line := range []int{23, 24, 28, 32, 33, 34, 38, 40, 45, 46} {
			if has(line, NoteNotTranslated, "") {
				t.Errorf("line %d reported not translated: %v", line, byLine[line])
			}
		}
		if im.SpyLines != 21 || im.Translated != 10 {
			t.Errorf("spy lines %d, translated %d; want 21 and 10", im.SpyLines, im.Translated)
		}
	})
	t.Run("what a translated line loses is named", func(t *testing.T) {
		if !has(32, NotePartly, `"2002" matches no channel`) {
			t.Errorf("line 32: the bare e() entry is not reported: %v", byLine[32])
		}
		if !has(34, NotePartly, "r (record") {
			t.Errorf("line 34: r is not reported: %v", byLine[34])
		}
	})
	t.Run("conditions the proposal does not keep are flagged for review", func(t *testing.T) {
		if !has(45, NoteReview, "GotoIf at extensions.conf:43") {
			t.Errorf("line 45: the GotoIf guard is not reported: %v", byLine[45])
		}
		if !has(46, NoteReview, "ExecIf") {
			t.Errorf("line 46: the ExecIf is not reported: %v", byLine[46])
		}
	})
	t.Run("what the administrator must add is listed", func(t *testing.T) {
		if !has(4, NoteIgnored, "#include extensions_custom.conf") {
			t.Errorf("the #include is not reported: %v", byLine[4])
		}
		if !has(15, NoteTodo, "teams: [night]") {
			t.Errorf("the SPYGROUP of a pattern extension is not reported: %v", byLine[15])
		}
		if !has(27, NoteTodo, "profile spy-billing has no user") {
			t.Errorf("a profile nobody holds is not reported: %v", byLine[27])
		}
		if !has(35, NoteIgnored, "parkedcalls") {
			t.Errorf("an include of an unread context is not reported: %v", byLine[35])
		}
	})
	t.Run("options that decide no right are named", func(t *testing.T) {
		if !has(38, NoteIgnored, "v (volume)") || !has(45, NoteIgnored, "X (exit") {
			t.Errorf("v() and X not reported: %v %v", byLine[38], byLine[45])
		}
	})
}

func TestImportDialplanWrittenFile(t *testing.T) {
	data, err := os.ReadFile(dialplanFile)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ImportDialplan([]DialplanFile{{Name: "extensions.conf", Data: data}}, dialplanSupervisors)
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalDialplanImport(im)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every grant names the dialplan line it comes from", func(t *testing.T) {
		for _, want := range []string{
			"# extensions.conf:23 [sup-sales] exten => *101,1,ChanSpy(,qg(sales))\n      - actions: [monitor.listen]\n        teams: [sales]\n",
			"# extensions.conf:40 [sup-qa] same => n,ChanSpy(PJSIP/${EXTEN:4},dqE)\n      - actions: [monitor.listen, monitor.whisper, monitor.barge]\n        agents: [\"3001\"]\n",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the proposal lacks\n%s\ngot:\n%s", want, out)
			}
		}
	})
	t.Run("agents carry their SPYGROUP as teams", func(t *testing.T) {
		want := "  - id: \"2002\"\n    teams: [sales, vip]\n    identities: [PJSIP/2002]\n"
		if !strings.Contains(string(out), want) {
			t.Errorf("the proposal lacks\n%s\ngot:\n%s", want, out)
		}
	})
}

func TestImportDialplanSupervisors(t *testing.T) {
	data := []byte("[agents]\nexten => 2001,1,Dial(PJSIP/2001)\n[leads]\nexten => *1,1,ChanSpy(,q)\n[qa]\nexten => *2,1,ChanSpy(PJSIP/2001)\n")
	files := []DialplanFile{{Name: "x.conf", Data: data}}
	t.Run("a supervisor named by channel is the agent", func(t *testing.T) {
		im, err := ImportDialplan(files, map[string][]string{"leads": {"PJSIP/2001"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Policy.Users) != 1 || im.Policy.Users[0].Profile != "leads" {
			t.Errorf("users = %+v, want 2001 holding leads", im.Policy.Users)
		}
	})
	for _, tc := range []struct {
		name string
		sup  map[string][]string
		want string
	}{
		{"a context with no spy line is refused", map[string][]string{"agents": {"a"}}, `context "agents": no translated`},
		{"a user given two contexts is refused", map[string][]string{"leads": {"a"}, "qa": {"a"}}, "a user holds one profile"},
		{"a bad id is refused", map[string][]string{"leads": {"a b"}}, "invalid id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportDialplan(files, tc.sup)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestDialplanSyntax(t *testing.T) {
	t.Run("arguments split as Asterisk splits them", func(t *testing.T) {
		got := splitArgs(`PJSIP/${CUT(x,-,1)},"a,b",g(x\,y),e(1:2)`, ',', 0)
		want := []string{`PJSIP/${CUT(x,-,1)}`, `"a,b"`, `g(x\,y)`, `e(1:2)`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitArgs = %q, want %q", got, want)
		}
	})
	t.Run("extension patterns match as Asterisk matches them", func(t *testing.T) {
		for _, tc := range []struct {
			pattern, s string
			want       bool
		}{
			{"XXXX", "1001", true}, {"XXXX", "100", false}, {"NXX", "199", false},
			{"Z.", "10", true}, {"Z.", "1", false}, {"1!", "1", true},
			{"[2-4]X", "35", true}, {"[2-4]X", "55", false},
		} {
			if got := matchPattern(tc.pattern, tc.s); got != tc.want {
				t.Errorf("matchPattern(%q, %q) = %v", tc.pattern, tc.s, got)
			}
		}
	})
	t.Run("comments are not read", func(t *testing.T) {
		var d dialplan
		d.read("c.conf", []byte("[a]\n;--\nexten => 1,1,ChanSpy(,q)\n--;\nexten => 2,1,ChanSpy(,q) ; ChanSpy(,B)\nexten => 3,1,NoOp(a\\;b)\n"))
		if len(d.lines) != 2 || d.lines[0].args != ",q" || d.lines[1].args != "a;b" {
			t.Errorf("lines = %+v", d.lines)
		}
	})
}

func TestDialplanNoteIsOneLine(t *testing.T) {
	n := DialplanNote{File: "a\x1b[2J.conf", Line: 3, Kind: NoteTodo, Msg: "x\ny\xff\u202e"}
	if got, want := n.String(), `a\x1b[2J.conf:3: todo: x\ny\xff\u202e`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestImportDialplanExecIfBranches(t *testing.T) {
	data := []byte("[leads]\nexten => *1,1,ExecIf($[${X}]?ChanSpy(,q):ChanSpy(,B))\n")
	im, err := ImportDialplan([]DialplanFile{{Name: "x.conf", Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[NoteKind]bool{}
	for _, n := range im.Notes {
		if n.Line == 2 {
			kinds[n.Kind] = true
		}
	}
	if !kinds[NotePartly] || !kinds[NoteReview] || kinds[NoteNotTranslated] {
		t.Errorf("notes %v: want the false branch partly translated and the condition to review", im.Notes)
	}
	if g := im.Policy.Profiles[0].Grants; len(g) != 1 || g[0].Actions != enforce.NewActionSet(enforce.MonitorListen) {
		t.Errorf("grants %+v: want the true branch's listen only", g)
	}
}
