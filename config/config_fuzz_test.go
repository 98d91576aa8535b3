package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretMark is the password the fuzz seeds carry.
const secretMark = "s3cr3t-pw"

// holdsSecret reports whether data carries secretMark once, where a secret
// goes: as a password value, or as the password of a URL's user info. The
// mark elsewhere (a log level, a queue name) is no secret, and echoing it
// in "unknown level" is what an operator needs.
func holdsSecret(data string) bool {
	i := strings.Index(data, secretMark)
	if i < 0 || strings.Count(data, secretMark) != 1 {
		return false
	}
	before, after := data[:i], data[i+len(secretMark):]
	line := before[strings.LastIndex(before, "\n")+1:]
	return strings.HasSuffix(strings.TrimRight(line, " \t\"'"), "password:") ||
		strings.HasSuffix(line, ":") && strings.HasPrefix(after, "@") && strings.Contains(line, "://")
}

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
		if err != nil && holdsSecret(data) && strings.Contains(err.Error(), secretMark) {
			t.Fatalf("error echoes a secret: %v", err)
		}
	})
}

// TestLoadFileDoesNotPrintAMisplacedPassword: a password written where a
// mapping is expected (a missing colon, a wrong indentation) is refused
// with its line, and without its value.
func TestLoadFileDoesNotPrintAMisplacedPassword(t *testing.T) {
	for name, body := range map[string]string{
		"missing colon":          "redis:\n  password s3cr3t-pw\n",
		"bare top level":         "s3cr3t-pw\n",
		"list for a value":       "asterisk:\n  - s3cr3t-pw\n",
		"bad URL with user info": "asterisk:\n  url: http://cw:s3cr3t-pw@pbx:8088/%zz\n  user: cw\n  password: x\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "callwarden.yaml")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadFile(path)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), secretMark) {
				t.Errorf("error %q prints the password", err)
			}
		})
	}
}
