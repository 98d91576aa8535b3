package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dialplanFile is the call centre dialplan config's own tests import
// (config/dialplan_test.go checks its decisions one by one).
const dialplanFile = "../../config/testdata/dialplan/extensions.conf"

func TestProfilesImportDialplan(t *testing.T) {
	t.Run("the proposal on stdout validates and the report is on stderr", func(t *testing.T) {
		r := runCLI(t, "", nil, "profiles", "import-dialplan", dialplanFile,
			"--supervisors", "sup-sales=lead-sales", "--supervisors", "sup-qa=qa1,qa2")
		if r.code != 0 {
			t.Fatalf("import: %+v", r)
		}
		if !strings.Contains(r.stdout, "name: sup-sales") || strings.Contains(r.stdout, "not translated") {
			t.Errorf("stdout is not the proposal alone:\n%s", r.stdout)
		}
		for _, want := range []string{
			dialplanFile + ":50: not translated: ChanSpy: W (private whisper)",
			dialplanFile + ":56: not translated:",
			"21 ChanSpy/ExtenSpy lines, 10 translated (11 not translated,",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the report lacks %q:\n%s", want, r.stderr)
			}
		}
		v := runCLI(t, r.stdout, nil, "profiles", "validate", "-f", "-")
		if v.code != 0 || v.stdout != "ok: 5 profiles, 7 users\n" {
			t.Errorf("validate: %+v", v)
		}
		c := runCLI(t, r.stdout, nil, "check", "-f", "-", "--user", "qa2", "--action", "monitor.barge", "--agent", "3001")
		if c.code != exitOK {
			t.Errorf("qa2 may not barge into 3001 as _*1063XXX lets it: %+v", c)
		}
	})
	t.Run("-o writes the file and keeps an existing one unless --force", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "proposed.yaml")
		r := runCLI(t, "", nil, "profiles", "import-dialplan", "-o", out, dialplanFile)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "profiles validate -f "+out) {
			t.Fatalf("import -o: %+v", r)
		}
		if v := runCLI(t, "", nil, "profiles", "validate", "-f", out); v.code != 0 {
			t.Errorf("validate: %+v", v)
		}
		if r := runCLI(t, "", nil, "profiles", "import-dialplan", "-o", out, dialplanFile); r.code != exitBadInput || !strings.Contains(r.stderr, "--force") {
			t.Errorf("overwrote without --force: %+v", r)
		}
		if r := runCLI(t, "", nil, "profiles", "import-dialplan", "-o", out, "--force", dialplanFile); r.code != 0 {
			t.Errorf("--force: %+v", r)
		}
	})
	t.Run("a dialplan nothing translates still exits 0", func(t *testing.T) {
		in := filepath.Join(t.TempDir(), "extensions.conf")
		if err := os.WriteFile(in, []byte("[a]\nexten => *1,1,ChanSpy(,W)\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "", nil, "profiles", "import-dialplan", in)
		if r.code != 0 || !strings.Contains(r.stderr, in+":2: not translated") {
			t.Errorf("got %+v", r)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unreadable file exits 2", []string{"no-such.conf"}, "no-such.conf"},
		{"no file exits 2", nil, "want one or more dialplan files"},
		{"a malformed --supervisors exits 2", []string{dialplanFile, "--supervisors", "sup-sales"}, "want CONTEXT=ID"},
		{"--supervisors of a context without spy lines exits 2", []string{dialplanFile, "--supervisors", "agents=a"}, `context "agents"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", nil, append([]string{"profiles", "import-dialplan"}, tc.args...)...)
			if r.code != exitBadInput || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("got %+v, want exit 2 saying %q", r, tc.want)
			}
		})
	}
}
