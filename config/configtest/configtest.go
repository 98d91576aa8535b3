// Package configtest loads profiles files for other packages' tests.
package configtest

import (
	"testing"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// MustSnapshot compiles the profiles file at path into a snapshot of
// generation 1; it fails tb when the file does not load or compile.
func MustSnapshot(tb testing.TB, path string) *enforce.Snapshot {
	tb.Helper()
	p, err := config.LoadProfiles(path)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
