package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/callwarden/callwarden/"

// TestPackageLayout keeps the rooms what they say: the domain imports no
// other package of the module; the session core only the domain; no PBX
// adapter or HTTP API reaches a store (cache) or the daemon config, nor
// another adapter; the stores never reach an adapter. Only cmd wires them
// all together.
func TestPackageLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/callwarden/callwarden/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// adapter names the adapter a pbx package belongs to ("" for the
	// packages every adapter may share).
	adapter := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, "pbx/")
		if !ok {
			return ""
		}
		root, _, _ := strings.Cut(rest, "/")
		switch root {
		case "session", "httpauth":
			return ""
		}
		return root
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkg, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok || strings.HasPrefix(pkg, "cmd/") || strings.HasPrefix(pkg, "integration") {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			var why string
			switch {
			case pkg == "enforce":
				why = "the domain imports no other package of the module"
			case pkg == "pbx/session" && dep != "enforce":
				why = "the session core imports the domain only"
			case strings.HasPrefix(pkg, "pbx/") && (dep == "config" || dep == "cache" || strings.HasPrefix(dep, "cache/")):
				why = "adapters and APIs take their stores and settings from cmd"
			case strings.HasPrefix(pkg, "pbx/") && adapter(dep) != "" && adapter(dep) != adapter(pkg):
				why = "an adapter never imports another"
			case strings.HasPrefix(pkg, "cache") && strings.HasPrefix(dep, "pbx/"):
				why = "stores know no adapter"
			default:
				continue
			}
			t.Errorf("%s imports %s: %s", pkg, dep, why)
		}
	}
	if seen < 8 {
		t.Fatalf("go list saw only %d packages of the module", seen)
	}
}
