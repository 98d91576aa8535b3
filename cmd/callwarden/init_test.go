package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/config"
)

func TestProfilesInit(t *testing.T) {
	for _, name := range config.TemplateNames() {
		t.Run("the "+name+" template starts a file that validates", func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "profiles.yaml")
			r := runCLI(t, "", nil, "profiles", "init", "--template", name, "-o", out)
			if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "profiles validate -f "+out) {
				t.Fatalf("init: %+v", r)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "# users:") {
				t.Errorf("no commented example users section in:\n%s", data)
			}
			if v := runCLI(t, "", nil, "profiles", "validate", "-f", out); v.code != 0 || !strings.HasPrefix(v.stdout, "ok: ") {
				t.Errorf("validate: %+v", v)
			}
		})
	}
	t.Run("the commented example, uncommented, validates too", func(t *testing.T) {
		r := runCLI(t, "", nil, "profiles", "init", "--template", "xivo")
		if r.code != 0 {
			t.Fatalf("init to stdout: %+v", r)
		}
		// Uncomment from the example's "# users:" line on.
		var b strings.Builder
		example := false
		for _, l := range strings.SplitAfter(r.stdout, "\n") {
			example = example || l == "# users:\n"
			if example {
				l = strings.TrimPrefix(l, "# ")
			}
			b.WriteString(l)
		}
		out := filepath.Join(t.TempDir(), "profiles.yaml")
		if err := os.WriteFile(out, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if v := runCLI(t, "", nil, "profiles", "validate", "-f", out); v.code != 0 || strings.Contains(v.stdout, " 0 users") {
			t.Errorf("validate uncommented: %+v\n%s", v, b.String())
		}
	})
	t.Run("an existing file is kept unless --force", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "profiles.yaml")
		if err := os.WriteFile(out, []byte("mine\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "", nil, "profiles", "init", "--template", "callrex", "-o", out)
		if data, _ := os.ReadFile(out); r.code != 2 || string(data) != "mine\n" || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("without --force: %+v, file %q", r, data)
		}
		r = runCLI(t, "", nil, "profiles", "init", "--template", "callrex", "-o", out, "--force")
		if data, _ := os.ReadFile(out); r.code != 0 || !strings.Contains(string(data), "name: privileged-user") {
			t.Fatalf("with --force: %+v, file %q", r, data)
		}
	})
	t.Run("an unknown template exits 2 naming the valid ones", func(t *testing.T) {
		r := runCLI(t, "", nil, "profiles", "init", "--template", "asterisk")
		if r.code != 2 || r.stdout != "" {
			t.Fatalf("got %+v", r)
		}
		for _, n := range config.TemplateNames() {
			if !strings.Contains(r.stderr, n) {
				t.Errorf("stderr %q does not name %s", r.stderr, n)
			}
		}
	})
	t.Run("a missing --template exits 2 naming the valid ones", func(t *testing.T) {
		r := runCLI(t, "", nil, "profiles", "init")
		if r.code != 2 || !strings.Contains(r.stderr, "xivo") {
			t.Fatalf("got %+v", r)
		}
	})
}
