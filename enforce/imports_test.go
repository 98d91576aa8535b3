package enforce_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEnforceImportsNoAdapterOrNetwork keeps the domain pure: enforce must
// not depend, even transitively, on the store, the config, the PBX adapters
// or any network library.
func TestEnforceImportsNoAdapterOrNetwork(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/callwarden/callwarden/enforce").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/callwarden/callwarden/cache",
		"github.com/callwarden/callwarden/config",
		"github.com/callwarden/callwarden/pbx",
		"net", // net, net/http, net/url...: no network library
		"github.com/redis/", "github.com/CyCoreSystems/", "github.com/percipia/",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
				t.Errorf("enforce depends on %s", dep)
			}
		}
	}
}
