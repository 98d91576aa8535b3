package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadFile feeds arbitrary daemon configuration files to LoadFile and
// Validate: they load or fail with an error, never panic, and a secret
// written in the file never appears in the error that refuses it.
func FuzzLoadFile(f *testing.F) {
	for _, s := range []string{
		"http:\n  listen: 127.0.0.1:8088\n",
		"redis:\n  addresses: [127.0.0.1:6379]\n  password: s3cr3t-pw\n",
		"asterisk:\n  url: http://127.0.0.1:8088\n  username: cw\n  password: s3cr3t-pw\n",
		"staleness: -1s\n", "{", "- a\n", "",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		path := filepath.Join(dir, "callwarden.yaml")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadFile(path)
		if err == nil {
			err = c.Validate()
		}
		if err != nil && strings.Contains(data, "s3cr3t-pw") && strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Fatalf("error echoes a secret: %v", err)
		}
	})
}

// TestLoadFileDoesNotPrintAMisplacedPassword: a password written where a
// mapping is expected (a missing colon, a wrong indentation) is refused
// with its line, and without its value.
func TestLoadFileDoesNotPrintAMisplacedPassword(t *testing.T) {
	for name, body := range map[string]string{
		"missing colon":    "redis:\n  password s3cr3t-pw\n",
		"bare top level":   "s3cr3t-pw\n",
		"list for a value": "asterisk:\n  - s3cr3t-pw\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "callwarden.yaml")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(path)
			if err == nil {
				t.Fatal("loaded")
			}
			if strings.Contains(err.Error(), "s3cr3t-pw") || !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q: want the line, not the value", err)
			}
		})
	}
}
