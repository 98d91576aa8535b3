package enforce_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callwarden/callwarden/enforce"
)

func TestCheckIDAcceptsWhatPBXsAndAdminsWrite(t *testing.T) {
	for _, id := range []string{"alice", "1001", "PJSIP/1001", "Local/2001@cw-agent", "sip:1001@pbx.example.com",
		"team-a", "sales_fr", "supervisor-with-recording", "élodie", "*222", "user+tag", strings.Repeat("a", enforce.MaxIDLen)} {
		if err := enforce.CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v, want nil", id, err)
		}
	}
}

func TestCheckIDRefusesWhatCouldForgeALineOrNeverMatch(t *testing.T) {
	for name, id := range map[string]string{
		"empty":             "",
		"CR LF":             "alice\r\nallow: mallory",
		"NUL":               "ali\x00ce",
		"ESC":               "\x1b[31malice",
		"bidi override":     "alice\u202egnp.exe",
		"zero width joiner": "ali\u200dce",
		"leading space":     " alice",
		"trailing space":    "alice ",
		"inner space":       "al ice",
		"tab":               "al\tice",
		"quote":             `alice"`,
		"invalid UTF-8":     "al\xffice",
		"too long":          strings.Repeat("a", enforce.MaxIDLen+1),
		"64 MiB":            strings.Repeat("a", 64<<20),
	} {
		t.Run(name, func(t *testing.T) {
			err := enforce.CheckID(id)
			if !errors.Is(err, enforce.ErrInvalidID) {
				t.Fatalf("CheckID = %v, want ErrInvalidID", err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n\x00\x1b\u202e\u200d") || !utf8.ValidString(msg) || len(msg) > 300 {
				t.Errorf("error carries the raw id: %q", msg)
			}
		})
	}
}

func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"alice", "PJSIP/1001", "a\r\nb", "\u202e", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := enforce.CheckID(s)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n\x00\x1b") || !utf8.ValidString(msg) {
				t.Fatalf("error message is not safe to print: %q", msg)
			}
			return
		}
		if s == "" || len(s) > enforce.MaxIDLen || strings.ContainsAny(s, " \t\r\n\x00\x1b\"'\\") || !utf8.ValidString(s) {
			t.Fatalf("CheckID accepted %q", s)
		}
	})
}
