package integration

// deploy/freeswitch, the files an administrator installs, against a real FreeSWITCH
// 1.10.12: a FreeSWITCH of the test's own runs the lab's configuration with the
// shipped dialplan, vars and feature-code files in place of the lab's (or with the
// shipped event socket and ACL), so what is shipped is what is proven: it loads, a
// feature code reaches callwarden's socket with the contract's variables, and without
// callwarden the call is refused. The shipped dialplan is also held to the lab's
// extension by extension, so the two cannot drift apart unnoticed.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
)

const (
	deployDir          = "../deploy/freeswitch"
	labConfDir         = "../" + lab.FreeSWITCHConfDir
	shippedSocket      = "127.0.0.1:8084" // vars_callwarden.xml's callwarden_socket
	shippedESLPassword = "CHANGE-ME"      // event_socket.conf.xml's placeholder
	// testSocketFile is where the test points $${callwarden_socket} at its own
	// listener (included by vars.xml after the shipped vars_callwarden.xml).
	testSocketFile = "callwarden_test_socket.xml"
	containerConf  = "/usr/local/freeswitch/conf"
)

// fsDialplanFile is a dialplan file as FreeSWITCH's XML dialplan reads it.
type fsDialplanFile struct {
	Contexts []struct {
		Name       string        `xml:"name,attr"`
		Extensions []fsExtension `xml:"extension"`
	} `xml:"context"`
}

type fsExtension struct {
	Name       string `xml:"name,attr"`
	Conditions []struct {
		Field      string `xml:"field,attr"`
		Expression string `xml:"expression,attr"`
		Actions    []struct {
			App  string `xml:"application,attr"`
			Data string `xml:"data,attr"`
		} `xml:"action"`
	} `xml:"condition"`
}

// mustDialplan reads the extensions of context name in the dialplan file path.
func mustDialplan(t *testing.T, path, name string) []fsExtension {
	t.Helper()
	b, err := os.ReadFile(path)
	mustOK(t, err)
	var f fsDialplanFile
	if err := xml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, c := range f.Contexts {
		if c.Name == name {
			return c.Extensions
		}
	}
	t.Fatalf("%s: no context %q", path, name)
	return nil
}

func TestFreeSWITCHDeployDialplanMatchesTheLab(t *testing.T) {
	labExt := mustDialplan(t, labConfDir+"/dialplan/callwarden.xml", "callwarden")
	shipped := mustDialplan(t, deployDir+"/dialplan/callwarden.xml", "callwarden")
	if len(labExt) < 9 || len(labExt[0].Conditions) == 0 || len(labExt[0].Conditions[0].Actions) == 0 {
		t.Fatalf("the lab's context callwarden read as %+v: not its feature codes", labExt)
	}
	// The one intended difference: the lab reads the socket at call time (a test aims
	// one call at its own listener), production at load time (nobody can).
	for i := range shipped {
		for j := range shipped[i].Conditions {
			for k, a := range shipped[i].Conditions[j].Actions {
				shipped[i].Conditions[j].Actions[k].Data = strings.ReplaceAll(a.Data, "$${callwarden_socket}", "${callwarden_socket}")
			}
		}
	}
	if len(shipped) != len(labExt) {
		t.Errorf("deploy/freeswitch has %d extensions, the lab %d", len(shipped), len(labExt))
	}
	for i := range min(len(shipped), len(labExt)) {
		if !reflect.DeepEqual(shipped[i], labExt[i]) {
			t.Errorf("extension %d differs:\n deploy: %+v\n lab:    %+v", i, shipped[i], labExt[i])
		}
	}

	t.Run("the phones' context sends every feature code and nothing else", func(t *testing.T) {
		b, err := os.ReadFile(deployDir + "/dialplan/default/callwarden_features.xml")
		mustOK(t, err)
		var ext struct {
			Extension fsExtension `xml:"extension"`
		}
		mustOK(t, xml.Unmarshal(b, &ext))
		re := regexp.MustCompile(ext.Extension.Conditions[0].Expression)
		for _, code := range []string{"*2222001", "*2232001", "*2242001", "*2252001", "*226", "*22742", "*2282001", "*2292001", "*82001"} {
			if !re.MatchString(code) {
				t.Errorf("%s is not sent to context callwarden", code)
			}
		}
		for _, other := range []string{"callwarden_checked_allow_2001", "*8", "*0", "1001", "*2222001x"} {
			if re.MatchString(other) {
				t.Errorf("%q is sent to context callwarden: only the feature codes may be", other)
			}
		}
	})
}

// copyTree copies the directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	mustOK(t, err)
}

// labConfCopy is a copy of the lab's configuration in a directory named conf, as
// the harness copies a directory into the container under its own name.
func labConfCopy(t *testing.T) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "conf")
	copyTree(t, labConfDir, conf)
	return conf
}

// installShipped copies deploy/freeswitch's file rel to conf's path to.
func installShipped(t *testing.T, conf, rel, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, rel))
	mustOK(t, err)
	mustOK(t, os.MkdirAll(filepath.Dir(filepath.Join(conf, to)), 0o755))
	mustOK(t, os.WriteFile(filepath.Join(conf, to), b, 0o644))
}

// editConf replaces what matches re (exactly once) in conf's file rel by repl,
// as an administrator's edit of their own file.
func editConf(t *testing.T, conf, rel, re, repl string) {
	t.Helper()
	path := filepath.Join(conf, rel)
	b, err := os.ReadFile(path)
	mustOK(t, err)
	rx := regexp.MustCompile(re)
	if n := len(rx.FindAllIndex(b, -1)); n != 1 {
		t.Fatalf("%s: %d matches of %s, want 1", rel, n, re)
	}
	mustOK(t, os.WriteFile(path, rx.ReplaceAll(b, []byte(repl)), 0o644))
}

// deployDialplanConf is the lab's configuration installed the way deploy/freeswitch's
// README says: its callwarden.xml in place of the lab's, its features file included
// at the top of the phones' context (default), its vars_callwarden.xml included from
// vars.xml, followed by the test's own socket override (empty at first).
func deployDialplanConf(t *testing.T) string {
	t.Helper()
	conf := labConfCopy(t)
	installShipped(t, conf, "dialplan/callwarden.xml", "dialplan/callwarden.xml")
	installShipped(t, conf, "dialplan/default/callwarden_features.xml", "dialplan/default/callwarden_features.xml")
	installShipped(t, conf, "vars_callwarden.xml", "vars_callwarden.xml")
	editConf(t, conf, "dialplan/default.xml", `<context name="default">`,
		"<context name=\"default\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"default/*.xml\"/>")
	editConf(t, conf, "vars.xml", `</include>`,
		"  <X-PRE-PROCESS cmd=\"include\" data=\"vars_callwarden.xml\"/>\n  <X-PRE-PROCESS cmd=\"include\" data=\""+testSocketFile+"\"/>\n</include>")
	mustOK(t, os.WriteFile(filepath.Join(conf, testSocketFile), []byte("<include>\n</include>\n"), 0o644))
	return conf
}

// pointSocket sets $${callwarden_socket} to addr (the test's socket override, then
// reloadxml, as an administrator changing vars.xml would).
func pointSocket(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, addr string) {
	t.Helper()
	body := "<include>\n  <X-PRE-PROCESS cmd=\"set\" data=\"callwarden_socket=" + addr + "\"/>\n</include>\n"
	_, err := fs.Exec(ctx, "sh", "-c", `printf '%s' "$1" > "$2"`, "sh", body, containerConf+"/"+testSocketFile)
	mustOK(t, err)
	_, err = fs.API(ctx, "reloadxml")
	mustOK(t, err)
	wantGlobal(ctx, t, fs, "callwarden_socket", addr)
}

func wantGlobal(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, name, want string) {
	t.Helper()
	got, err := fs.API(ctx, "global_getvar "+name)
	mustOK(t, err)
	if got = strings.TrimSpace(got); got != want {
		t.Fatalf("global %s = %q, want %q", name, got, want)
	}
}

// hangupWithoutEavesdrop waits for channel uuid's hangup and returns its cause; the
// test fails if the channel ran eavesdrop before.
func hangupWithoutEavesdrop(ctx context.Context, t *testing.T, ev *fsEvents, uuid string) string {
	t.Helper()
	var cause string
	ev.wait(ctx, t, uuid+"'s hangup", func(h map[string]string) bool {
		if h["Unique-ID"] != uuid {
			return false
		}
		if h["Event-Name"] == "CHANNEL_EXECUTE" && h["Application"] == "eavesdrop" {
			t.Errorf("%s ran eavesdrop(%s): it must be refused", uuid, h["Application-Data"])
		}
		cause = h["Hangup-Cause"]
		return h["Event-Name"] == "CHANNEL_HANGUP"
	})
	return cause
}

// subscribeParks is subscribeFS with CHANNEL_PARK too: the socket application parks
// the channel while callwarden holds it.
func subscribeParks(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH) *fsEvents {
	t.Helper()
	ev := subscribeFS(ctx, t, fs)
	_, err := ev.c.Command(ctx, "event plain CHANNEL_PARK")
	mustOK(t, err)
	return ev
}

// mustDial makes a phone of the default context dial exten (vars added to the call)
// and returns its channel running the feature code; a call hung up before the harness
// saw its partner is no error: the events say what happened.
func mustDial(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, phone, exten string, vars ...string) string {
	t.Helper()
	call, err := fs.Originate(ctx, "phone", "supervisor_"+phone, exten, "default", vars...)
	if err != nil && !errors.Is(err, lab.ErrHungUp) {
		t.Fatal(err)
	}
	return call.A
}

// noConnection fails the test if FreeSWITCH connects to ln within a second.
func noConnection(ctx context.Context, t *testing.T, ln *lab.OutboundListener, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if c, err := ln.Accept(ctx); err == nil {
		c.Close()
		t.Errorf("FreeSWITCH connected to %s: %s", ln.Addr(), why)
	}
}

func TestFreeSWITCHDeployWiringFailsClosedAndReachesCallwarden(t *testing.T) {
	fs := suite.OwnFreeSWITCH(t, lab.FreeSWITCHOptions{ConfDir: deployDialplanConf(t)})
	ctx := contextFor(t, 2*time.Minute)

	t.Run("the shipped files load: the socket is vars_callwarden.xml's, in every feature code", func(t *testing.T) {
		wantGlobal(ctx, t, fs, "callwarden_socket", shippedSocket)
		out, err := fs.API(ctx, "xml_locate dialplan context name callwarden")
		mustOK(t, err)
		if n := strings.Count(out, `data="`+shippedSocket+` async full"`); n != 9 {
			t.Errorf("%d socket actions aimed at %s in the loaded context callwarden, want 9:\n%s", n, shippedSocket, out)
		}
		out, err = fs.API(ctx, "xml_locate dialplan context name default")
		mustOK(t, err)
		if !strings.Contains(out, `name="callwarden_features"`) {
			t.Errorf("the loaded context default has no callwarden_features extension")
		}
	})

	_, agent, err := fs.CustomerCall(ctx, "", "2003", "5550102")
	mustOK(t, err)

	t.Run("without callwarden a feature code hangs up, and a channel variable cannot redirect its socket", func(t *testing.T) {
		// Nothing listens on 127.0.0.1:8084 inside the container: callwarden is down.
		rogue, err := fs.ListenOutbound()
		mustOK(t, err)
		for _, exten := range []string{"*2222003", "*82003"} {
			ev := subscribeFS(ctx, t, fs)
			sup := mustDial(ctx, t, fs, "1001", exten, "callwarden_socket="+rogue.Addr(), "callwarden_decision=allow")
			cause := hangupWithoutEavesdrop(ctx, t, ev, sup)
			if want := map[string]string{"*2222003": "SERVICE_UNAVAILABLE", "*82003": "CALL_REJECTED"}[exten]; cause != want {
				t.Errorf("%s hung up with %s, want %s (the dialplan's refusal)", exten, cause, want)
			}
		}
		noConnection(ctx, t, rogue, "the socket must come from vars.xml, not from the channel")
	})

	ln, err := fs.ListenOutbound()
	mustOK(t, err)
	pointSocket(ctx, t, fs, ln.Addr())

	t.Run("a feature code reaches callwarden's socket with the contract's variables", func(t *testing.T) {
		for _, tc := range []struct{ exten, action, mode, target string }{
			{"*2222003", "monitor", "listen", "2003"},
			{"*226", "record", "toggle", ""},
			{"*22742", "playback", "play", "42"},
			{"*82003", "check", "monitor.listen", "2003"},
		} {
			ev := subscribeParks(ctx, t, fs)
			sup := mustDial(ctx, t, fs, "1001", tc.exten)
			conn, err := ln.Accept(ctx)
			mustOK(t, err)
			ch := conn.Channel
			got := fmt.Sprintf("%s %s %s %s %s", ch.Header("Unique-ID"), ch.Header("Caller-Context"),
				ch.Var("callwarden_action"), ch.Var("callwarden_mode"), ch.Var("callwarden_target"))
			if want := fmt.Sprintf("%s callwarden %s %s %s", sup, tc.action, tc.mode, tc.target); got != want {
				t.Errorf("%s: socket saw %q, want %q", tc.exten, got, want)
			}
			// A session that ends before FreeSWITCH has parked the channel leaves
			// it parked for good (FreeSWITCH 1.10.12's socket application, see
			// deploy/freeswitch/README.md): end it as callwarden would, once parked.
			ev.wait(ctx, t, sup+" parked by socket", isEvent("CHANNEL_PARK", sup))
			_, err = conn.Command(ctx, "exit")
			mustOK(t, err)
			conn.Close()
			if err := fs.WaitGone(shortly(t, ctx), sup); err != nil {
				d, _ := fs.Dump(ctx, sup)
				t.Fatalf("%s: %v; it runs %s(%s), state %s", tc.exten, err, d["variable_current_application"], d["variable_current_application_data"], d["Channel-State"])
			}
		}
	})

	t.Run("the check example follows callwarden's answer, never the caller's own", func(t *testing.T) {
		ev := subscribeFS(ctx, t, fs)
		sup := mustDial(ctx, t, fs, "1002", "*82003", "callwarden_decision=allow")
		conn, err := ln.Accept(ctx)
		mustOK(t, err)
		if d := conn.Channel.Var("callwarden_decision"); d != "" {
			t.Errorf("callwarden_decision = %q when callwarden is asked, want it unset", d)
		}
		conn.Close() // callwarden answers nothing: a refusal
		if cause := hangupWithoutEavesdrop(ctx, t, ev, sup); cause != "CALL_REJECTED" {
			t.Errorf("hung up with %s, want CALL_REJECTED", cause)
		}

		sup = decideOnSocket(ctx, t, fs, ln, "allow")
		wantEavesdropping(ctx, t, fs, sup, agent)
	})
}

func TestFreeSWITCHDeployESLListensOnLoopbackBehindItsACL(t *testing.T) {
	conf := labConfCopy(t)
	installShipped(t, conf, "autoload_configs/event_socket.conf.xml", "autoload_configs/event_socket.conf.xml")
	snippet, err := os.ReadFile(deployDir + "/autoload_configs/acl.conf.xml.snippet")
	mustOK(t, err)
	// The lab's list of the same name makes way for the shipped one.
	editConf(t, conf, "autoload_configs/acl.conf.xml", `(?s)<list name="callwarden_esl".*?</list>`, strings.ReplaceAll(string(snippet), "$", "$$"))

	// Ready means fs_cli, inside the container, authenticated with the shipped
	// password through 127.0.0.1: the shipped ACL admits loopback (an ACL naming
	// no list would refuse everyone).
	fs := suite.OwnFreeSWITCH(t, lab.FreeSWITCHOptions{ConfDir: conf, ESLInsideOnly: true, ESLPassword: shippedESLPassword})
	ctx := contextFor(t, time.Minute)

	out, err := fs.Exec(ctx, "fs_cli", "-p", shippedESLPassword, "-x", "xml_locate configuration configuration name event_socket.conf")
	mustOK(t, err)
	for _, want := range []string{`name="listen-ip" value="127.0.0.1"`, `name="apply-inbound-acl" value="callwarden_esl"`} {
		if !strings.Contains(out, want) {
			t.Errorf("loaded event_socket.conf lacks %s:\n%s", want, out)
		}
	}
	if out, err := fs.Exec(ctx, "fs_cli", "-p", "not-the-password", "-x", "status"); err == nil && strings.Contains(out, "is ready") {
		t.Errorf("a wrong password was let in: %s", out)
	}
	// From outside the container (its published port) nothing answers.
	if c, err := lab.DialESL(ctx, fs.ESLAddr(), shippedESLPassword); err == nil {
		c.Close()
		t.Errorf("ESL at %s answered from outside the container; want loopback only", fs.ESLAddr())
	}
}
