package config

import (
	"bytes"
	"os"
	"testing"
)

// FuzzImportDialplan checks that no dialplan makes the importer panic or
// fail, that every note points at a line of the input, and that the
// proposal it writes is a profiles file ParseProfiles reads back as the
// same policy.
func FuzzImportDialplan(f *testing.F) {
	data, err := os.ReadFile(dialplanFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	for _, s := range []string{
		"",
		"[a]\nexten => _*222XXXX,1,ExtenSpy(${EXTEN:4}@a,dg(x:y)e(PJSIP/1))\n",
		"[a]\nexten => 1,1,Dial(PJSIP/1&SIP/1)\nexten => 1,2,Set(__SPYGROUP=g)\n[b]\ninclude => a\ninclude => b\nexten => *,1,ChanSpy(PJSIP/${EXTEN:9},e(PJSIP/1\n",
		"[a\nexten => _X.,1,ExecIf($[1]?ChanSpy(,B):NoOp())\n;-- never closed\n",
		"[\xff]\nexten => 1/2,1,ChanSpy(all,wWBdqoX)\nsame => n,ExtenSpy(@,g())\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := ImportDialplan([]DialplanFile{{Name: "fuzz.conf", Data: data}}, nil)
		if err != nil {
			t.Fatalf("ImportDialplan failed without supervisors: %v", err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, n := range im.Notes {
			if n.File != "" && (n.File != "fuzz.conf" || n.Line < 1 || n.Line > lines+1) {
				t.Fatalf("note outside the input: %v", n)
			}
		}
		out, err := MarshalDialplanImport(im)
		if err != nil {
			t.Fatalf("MarshalDialplanImport: %v", err)
		}
		mustReadBack(t, out, im.Policy)
	})
}
