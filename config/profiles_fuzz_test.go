package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// FuzzParseProfiles checks that no input makes the parser panic, that a
// rejected input yields Errors naming the file, and that an accepted one is
// a Policy enforce compiles and that survives MarshalProfiles.
func FuzzParseProfiles(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yaml", "testdata/split/*.yaml", "testdata/conflict/*.yaml", "../deploy/examples/*.yaml"} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range paths {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"version: 1\n",
		"version: 1\nprofiles: [{name: p, grants: [{actions: [monitor.listen], agents: self, hours: {from: \"22:00\", to: \"06:00\", tz: Europe/Paris}}]}]\n",
		"version: 1\nusers: [{id: 1, identities: [1, 2.5, null, ~, {a: b}]}]\n",
		"version: 1\nprofiles: [{name: p, grants: [{actions: [monitor.listen, recording.pause], max_duration: 30m, max_pause: 366d}]}]\n",
		"version: 1\nprofiles: &a [*a]\n",
		"version: 1\nprotected: {users: [a, a], queues: b}\n",
		"- [\n",
		"version: 1\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfiles("fuzz.yaml", data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, fe := range errs {
				if fe.File != "fuzz.yaml" {
					t.Fatalf("error without the file name: %v", fe)
				}
			}
			return
		}
		if _, err := enforce.NewSnapshot(p, 0); err != nil {
			t.Fatalf("accepted a policy enforce rejects: %v", err)
		}
		out, err := MarshalProfiles(p)
		if err != nil {
			t.Fatalf("MarshalProfiles: %v", err)
		}
		mustReadBack(t, out, p)
	})
}
