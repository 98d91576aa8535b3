package adminapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/checkapi"
	"github.com/callwarden/callwarden/pbx/httpauth"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// fakeStore is an in-memory enforce.PolicyStore with compare-and-set on
// the generation, and switches to simulate an outage or a read-only store.
type fakeStore struct {
	mu          sync.Mutex
	policy      enforce.Policy
	gen         uint64
	unavailable bool
	readOnly    bool
	applies     int
	reads       int
	// pres are the preconditions ApplyPolicy was given, in order.
	pres []enforce.Precondition
}

func (s *fakeStore) Policy(context.Context) (enforce.Policy, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.unavailable {
		return enforce.Policy{}, 0, fmt.Errorf("fake: %w", enforce.ErrUnavailable)
	}
	return s.policy, s.gen, nil
}

func (s *fakeStore) Writable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		return fmt.Errorf("fake: %w", enforce.ErrReadOnly)
	}
	return nil
}

func (s *fakeStore) ApplyPolicy(_ context.Context, p enforce.Policy, pre enforce.Precondition) (uint64, enforce.PolicyDiff, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pres = append(s.pres, pre)
	switch {
	case s.unavailable:
		return 0, enforce.PolicyDiff{}, fmt.Errorf("fake: %w", enforce.ErrUnavailable)
	case s.readOnly:
		return 0, enforce.PolicyDiff{}, fmt.Errorf("fake: %w", enforce.ErrReadOnly)
	case !pre.Holds(s.gen):
		return s.gen, enforce.PolicyDiff{}, enforce.ErrConflict
	}
	if _, err := enforce.NewSnapshot(p, 0); err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	d := enforce.DiffPolicies(s.policy, p)
	s.policy = p
	s.gen++
	s.applies++
	return s.gen, d, nil
}

// patchStore adds enforce.PatchStore to a fakeStore: compare-and-set on
// the base snapshot's generation, validation by Snapshot.Patch.
type patchStore struct {
	*fakeStore
	patches int
}

func (s *patchStore) Generation(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, nil
}

func (s *patchStore) ApplyPatch(_ context.Context, base *enforce.Snapshot, p enforce.PolicyPatch) (uint64, enforce.PolicyDiff, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if base.Generation() != s.gen {
		return s.gen, enforce.PolicyDiff{}, enforce.ErrConflict
	}
	next, err := base.Patch(p, s.gen+1)
	if err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	d := enforce.DiffPolicies(s.policy, next.Policy())
	s.policy, s.gen = next.Policy(), s.gen+1
	s.applies++
	s.patches++
	return s.gen, d, nil
}

// fakeAudit is an Auditor and AuditReader over a slice.
type fakeAudit struct{ sessiontest.AuditLog }

func (a *fakeAudit) ReadAudit(_ context.Context, f enforce.AuditFilter) ([]enforce.AuditRecord, error) {
	var out []enforce.AuditRecord
	for _, r := range a.All() {
		if f.Match(&r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// fakeRecordings is a RecordingStore over a map.
type fakeRecordings map[string]enforce.Recording

func (m fakeRecordings) SaveRecording(_ context.Context, r enforce.Recording) error {
	m[r.ID] = r
	return nil
}

func (m fakeRecordings) Recording(_ context.Context, id string) (enforce.Recording, error) {
	r, ok := m[id]
	if !ok {
		return r, enforce.ErrNotFound
	}
	return r, nil
}

func (m fakeRecordings) ActiveRecording(context.Context, string) (enforce.Recording, error) {
	return enforce.Recording{}, enforce.ErrNotFound
}

// jsonCodec is a small stand-in for cmd's profiles-file codec: it knows
// actions, a queues scope and profiles, and reports unknown actions with
// their field path, which is all the handler needs to be tested.
type jsonCodec struct{}

type wireGrant struct {
	Actions  []string `json:"actions"`
	Queues   any      `json:"queues,omitempty"`
	Profiles []string `json:"profiles,omitempty"`
}

type wireProfile struct {
	Name       string      `json:"name"`
	Grants     []wireGrant `json:"grants"`
	MaskDigits int         `json:"mask_digits,omitempty"`
}

type wireUser struct {
	ID         string   `json:"id"`
	Profile    string   `json:"profile,omitempty"`
	Queues     []string `json:"queues,omitempty"`
	Teams      []string `json:"teams,omitempty"`
	Identities []string `json:"identities,omitempty"`
}

func (jsonCodec) DecodeProfile(body []byte, _ []string) (enforce.Profile, error) {
	var w wireProfile
	if err := json.Unmarshal(body, &w); err != nil {
		return enforce.Profile{}, &adminapi.ValidationError{Fields: []adminapi.FieldError{{Message: err.Error()}}}
	}
	p := enforce.Profile{Name: w.Name, MaskDigits: w.MaskDigits}
	var fields []adminapi.FieldError
	for gi, wg := range w.Grants {
		var g enforce.Grant
		for ai, s := range wg.Actions {
			a, err := enforce.ParseAction(s)
			if err != nil {
				fields = append(fields, adminapi.FieldError{Field: fmt.Sprintf("grants[%d].actions[%d]", gi, ai), Line: 1, Message: err.Error()})
				continue
			}
			g.Actions |= enforce.NewActionSet(a)
		}
		switch q := wg.Queues.(type) {
		case string:
			g.Scopes[enforce.DimQueues].Kind = map[string]enforce.ScopeKind{"all": enforce.ScopeAll, "assigned": enforce.ScopeAssigned}[q]
		case []any:
			g.Scopes[enforce.DimQueues].Kind = enforce.ScopeList
			for _, v := range q {
				g.Scopes[enforce.DimQueues].Values = append(g.Scopes[enforce.DimQueues].Values, fmt.Sprint(v))
			}
		}
		g.Profiles = wg.Profiles
		p.Grants = append(p.Grants, g)
	}
	if len(fields) > 0 {
		return p, &adminapi.ValidationError{Fields: fields}
	}
	return p, nil
}

func (jsonCodec) DecodeUser(body []byte, _ []string) (enforce.User, error) {
	var w wireUser
	if err := json.Unmarshal(body, &w); err != nil {
		return enforce.User{}, &adminapi.ValidationError{Fields: []adminapi.FieldError{{Message: err.Error()}}}
	}
	return enforce.User{ID: w.ID, Profile: w.Profile, Queues: w.Queues, Teams: w.Teams, Identities: w.Identities}, nil
}

func (jsonCodec) EncodeProfile(p enforce.Profile) (json.RawMessage, error) {
	w := wireProfile{Name: p.Name, MaskDigits: p.MaskDigits}
	for _, g := range p.Grants {
		wg := wireGrant{Profiles: g.Profiles}
		for _, a := range g.Actions.List() {
			wg.Actions = append(wg.Actions, a.String())
		}
		w.Grants = append(w.Grants, wg)
	}
	return json.Marshal(w)
}

func (jsonCodec) EncodeUser(u enforce.User) (json.RawMessage, error) {
	return json.Marshal(wireUser{ID: u.ID, Profile: u.Profile, Queues: u.Queues, Teams: u.Teams, Identities: u.Identities})
}

// adminPolicy has an administrator (root), a supervisor that may hand out
// teacher on its own queues (alice), a teacher (bob), and users without
// profile.
func adminPolicy() enforce.Policy {
	all := [4]enforce.Scope{{Kind: enforce.ScopeAll}}
	return enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "administrator", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.RecordingPlayback), Scopes: all},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"administrator", "supervisor", "teacher"}, Scopes: all},
			}},
			{Name: "supervisor", MaskDigits: 4, Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.RecordingPlayback), Scopes: assignedQueues()},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"teacher"}, Scopes: assignedQueues()},
			}},
			{Name: "teacher", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: assignedQueues()},
			}},
		},
		Users: []enforce.User{
			{ID: "root", Profile: "administrator"},
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales", "support"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"}},
			{ID: "dave", Queues: []string{"sales"}},
			{ID: "erin", Identities: []string{"1005"}},
			{ID: "frank", Queues: []string{"billing"}},
		},
		Protected: enforce.Protected{Users: []string{"ceo"}},
	}
}

type adminFixture struct {
	store  *fakeStore
	audit  *fakeAudit
	recs   fakeRecordings
	holder *enforce.Holder
	srv    *httptest.Server
}

// newAdminFixture serves the admin API over adminPolicy at generation 1.
// The snapshot follows the store, as a Loader would.
func newAdminFixture(tb testing.TB) *adminFixture {
	tb.Helper()
	return newAdminFixtureOn(tb, &fakeStore{policy: adminPolicy(), gen: 1}, nil)
}

// newAdminFixtureOn serves the admin API over store, seen through wrap
// when it is set; the snapshot holds adminPolicy at generation 1.
func newAdminFixtureOn(tb testing.TB, store *fakeStore, wrap func(*fakeStore) enforce.PolicyStore) *adminFixture {
	tb.Helper()
	pol := adminPolicy()
	var ps enforce.PolicyStore = store
	if wrap != nil {
		ps = wrap(store)
	}
	f := &adminFixture{
		store:  store,
		audit:  &fakeAudit{},
		recs:   fakeRecordings{},
		holder: &enforce.Holder{},
	}
	f.holder.Store(mustSnapshot(tb, pol, 1))
	var tokens []httpauth.TokenHash
	for _, u := range []string{"root", "alice", "bob", "dave", "ghost", "audra"} {
		th, err := httpauth.ParseTokenHash(u, httpauth.HashToken(u+"-token"))
		if err != nil {
			tb.Fatal(err)
		}
		tokens = append(tokens, th)
	}
	pbx, err := httpauth.ParseRoleTokenHash(httpauth.RoleCheck, "pbx", httpauth.HashToken("pbx-token"))
	if err != nil {
		tb.Fatal(err)
	}
	tokens = append(tokens, pbx)
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store:       ps,
		Snapshot:    f.holder.Load,
		Auth:        httpauth.NewTokenSet(tokens),
		Codec:       jsonCodec{},
		Auditor:     f.audit,
		AuditReader: f.audit,
		Recordings:  f.recs,
		Now:         func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := checkapi.New(checkapi.Options{Snapshot: f.holder.Load, Admin: admin, Auth: httpauth.NewTokenSet(tokens)})
	if err != nil {
		tb.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	tb.Cleanup(f.srv.Close)
	return f
}

type response struct {
	code int
	hdr  http.Header
	body string
}

func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		tb.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// do sends a request as user (its token; "" for none) with an optional
// If-Match.
// wantField fails the test unless r has the status code and, when key is
// not empty, its JSON body has key set to value.
func (r response) wantField(tb testing.TB, code int, key, value string) {
	tb.Helper()
	if r.code != code || key != "" && r.json(tb)[key] != value {
		tb.Errorf("code %d body %s", r.code, r.body)
	}
}

func (f *adminFixture) do(tb testing.TB, method, path, user, ifMatch, body string) response {
	tb.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+user+"-token")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestAdminAuthentication(t *testing.T) {
	f := newAdminFixture(t)
	t.Run("no token is 401 with a Bearer challenge", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/profiles", "", "", "")
		if r.code != 401 || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("code %d, WWW-Authenticate %q", r.code, r.hdr.Get("WWW-Authenticate"))
		}
	})
	t.Run("bad token is 401", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/profiles", "mallory", "", "")
		if r.code != 401 || !strings.Contains(r.hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("code %d, WWW-Authenticate %q", r.code, r.hdr.Get("WWW-Authenticate"))
		}
	})
	t.Run("another scheme is 401", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/profiles", nil)
		req.SetBasicAuth("root", "root-token")
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("code %d", resp.StatusCode)
		}
	})
	t.Run("valid token of a user the policy does not know is 403", func(t *testing.T) {
		f.do(t, "GET", "/v1/profiles", "ghost", "", "").wantField(t, 403, "reason", "unknown_user")
	})
	t.Run("user without profile is 403", func(t *testing.T) {
		f.do(t, "GET", "/v1/users", "dave", "", "").wantField(t, 403, "reason", "no_profile")
	})
	t.Run("the check API needs a check token, not an admin one", func(t *testing.T) {
		if r := f.do(t, "GET", "/v1/check?user=alice&action=monitor.listen&queue=sales", "", "", ""); r.code != 401 {
			t.Errorf("without a token: code %d body %s", r.code, r.body)
		}
		if r := f.do(t, "GET", "/v1/check?user=alice&action=monitor.listen&queue=sales", "root", "", ""); r.code != 403 {
			t.Errorf("with an admin token: code %d body %s", r.code, r.body)
		}
		if r := f.do(t, "GET", "/v1/check?user=alice&action=monitor.listen&queue=sales", "pbx", "", ""); r.code != 200 {
			t.Errorf("with a check token: code %d body %s", r.code, r.body)
		}
	})
}

func storeGeneration(tb testing.TB, s *fakeStore) uint64 {
	tb.Helper()
	_, gen, err := s.Policy(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return gen
}

func TestAdminRefusesIDsOutsideTheGrammar(t *testing.T) {
	f := newAdminFixture(t)
	gen := storeGeneration(t, f.store)
	for name, path := range map[string]string{
		"user id with CR LF":           "/v1/users/eve%0D%0Aallow",
		"user id with a bidi override": "/v1/users/eve%E2%80%AE",
		"profile name with a space":    "/v1/profiles/my%20profile",
		"user id of 300 bytes":         "/v1/users/" + strings.Repeat("a", 300),
	} {
		t.Run(name, func(t *testing.T) {
			r := f.do(t, "PUT", path, "root", fmt.Sprintf(`"%d"`, gen), `{"id":"x"}`)
			if r.code != 400 || !strings.Contains(string(r.body), "invalid id") {
				t.Errorf("code %d body %s, want 400 invalid id", r.code, r.body)
			}
			if strings.ContainsAny(strings.TrimSuffix(string(r.body), "\n"), "\r\n\u202e") {
				t.Errorf("body carries the raw id: %q", r.body)
			}
		})
	}
	t.Run("a body naming an id outside the grammar changes nothing", func(t *testing.T) {
		r := f.do(t, "PUT", "/v1/users/eve", "root", fmt.Sprintf(`"%d"`, gen), `{"id":"eve","queues":["sales\u001b[2J"]}`)
		if r.code < 400 || r.code >= 500 {
			t.Errorf("code %d body %s, want 4xx", r.code, r.body)
		}
	})
	if got := storeGeneration(t, f.store); got != gen {
		t.Errorf("store moved from generation %d to %d", gen, got)
	}
}

func TestAdminProfiles(t *testing.T) {
	teacherBody := `{"name":"teacher","grants":[{"actions":["recording.playback","monitor.listen"],"queues":"assigned"}]}`
	t.Run("list carries the generation as ETag", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "GET", "/v1/profiles", "root", "", "")
		if r.code != 200 || r.hdr.Get("ETag") != `"1"` {
			t.Fatalf("code %d ETag %q body %s", r.code, r.hdr.Get("ETag"), r.body)
		}
		var b adminapi.ProfilesBody
		if err := json.Unmarshal([]byte(r.body), &b); err != nil || len(b.Profiles) != 3 || b.Generation != 1 {
			t.Errorf("body %s (%v)", r.body, err)
		}
	})
	t.Run("administrator replaces a profile with the current ETag", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"1"`, teacherBody)
		if r.code != 200 || r.hdr.Get("ETag") != `"2"` {
			t.Fatalf("code %d ETag %q body %s", r.code, r.hdr.Get("ETag"), r.body)
		}
		var b adminapi.ChangeBody
		if err := json.Unmarshal([]byte(r.body), &b); err != nil || !slices.Equal(b.Diff.ChangedProfiles, []string{"teacher"}) {
			t.Errorf("body %s (%v)", r.body, err)
		}
		if rec := f.audit.Last(t); rec.Source != "admin" || rec.User != "root" || rec.Decision != "allow" || rec.Target != "profile:teacher" {
			t.Errorf("audit %+v", rec)
		}
	})
	t.Run("missing If-Match is 428", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", "", teacherBody)
		if r.code != 428 || f.store.applies != 0 {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("malformed If-Match is 400", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", "1", teacherBody)
		if r.code != 400 {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("stale If-Match is 409 with the current ETag", func(t *testing.T) {
		f := newAdminFixture(t)
		if r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"1"`, teacherBody); r.code != 200 {
			t.Fatalf("first write: %d %s", r.code, r.body)
		}
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"1"`, `{"name":"teacher","grants":[]}`)
		if r.code != 409 || r.hdr.Get("ETag") != `"2"` || f.store.applies != 1 {
			t.Errorf("code %d ETag %q body %s", r.code, r.hdr.Get("ETag"), r.body)
		}
	})
	t.Run("a whole-policy write reaches the store as a compare-and-set on its If-Match, never unconditionally", func(t *testing.T) {
		f := newAdminFixture(t)
		if r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"1"`, teacherBody); r.code != 200 {
			t.Fatalf("write: %d %s", r.code, r.body)
		}
		if len(f.store.pres) != 1 || f.store.pres[0] != enforce.IfGeneration(1) {
			t.Errorf("preconditions %+v, want [IfGeneration(1)]", f.store.pres)
		}
	})
	t.Run(`If-Match "0" on a store never written is refused: nobody is defined at generation 0`, func(t *testing.T) {
		// Writes are authorized on the policy of the generation they are
		// applied on; an empty store is bootstrapped with `callwarden
		// profiles apply`, whose Redis credentials make it an administrator.
		f := newAdminFixtureOn(t, &fakeStore{}, nil)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"0"`, teacherBody)
		if r.code != 403 || r.json(t)["reason"] != "unknown_user" || f.store.applies != 0 || len(f.store.pres) != 0 {
			t.Fatalf("write on \"0\": %d %s; %d applies", r.code, r.body, f.store.applies)
		}
	})
	t.Run(`If-Match "0" on a store written since is a conflict`, func(t *testing.T) {
		f := newAdminFixtureOn(t, &fakeStore{}, nil)
		if _, _, err := f.store.ApplyPolicy(context.Background(), adminPolicy(), enforce.Unconditionally()); err != nil {
			t.Fatal(err)
		}
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"0"`, `{"name":"teacher","grants":[]}`)
		if r.code != 409 || r.hdr.Get("ETag") != `"1"` || f.store.applies != 1 || len(f.store.pres) != 1 {
			t.Errorf("write on \"0\": code %d ETag %q body %s; %d applies, preconditions %v", r.code, r.hdr.Get("ETag"), r.body, f.store.applies, f.store.pres)
		}
	})
	t.Run("invalid body is 422 with field paths", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"1"`,
			`{"name":"teacher","grants":[{"actions":["recording.playback","monitor.spy"]}]}`)
		if r.code != 422 {
			t.Fatalf("code %d body %s", r.code, r.body)
		}
		var b struct {
			Error  string                `json:"error"`
			Fields []adminapi.FieldError `json:"fields"`
		}
		if err := json.Unmarshal([]byte(r.body), &b); err != nil {
			t.Fatal(err)
		}
		if b.Error != "validation failed" || len(b.Fields) != 1 || b.Fields[0].Field != "grants[0].actions[1]" ||
			!strings.Contains(b.Fields[0].Message, "monitor.spy") {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("name differing from the URL is 422 on name", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "root", `"1"`, `{"name":"coach","grants":[]}`)
		if r.code != 422 || !strings.Contains(r.body, `"field":"name"`) {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("a policy the engine rejects is 422 and nothing is written", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "DELETE", "/v1/profiles/teacher", "root", `"1"`, "")
		if r.code != 422 || !strings.Contains(r.body, "unknown profile") || f.store.applies != 0 {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("supervisor may not change profiles", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/profiles/teacher", "alice", `"1"`, teacherBody)
		if r.code != 403 || r.json(t)["decision"] != "deny" || f.store.applies != 0 {
			t.Errorf("code %d body %s", r.code, r.body)
		}
		if rec := f.audit.Last(t); rec.Decision != "deny" || rec.User != "alice" {
			t.Errorf("audit %+v", rec)
		}
	})
	t.Run("unknown profile is 404", func(t *testing.T) {
		f := newAdminFixture(t)
		if r := f.do(t, "GET", "/v1/profiles/nobody", "root", "", ""); r.code != 404 {
			t.Errorf("code %d", r.code)
		}
	})
}

// TestAdminWritesPatchesAgainstTheDaemonsSnapshot: with a store that
// applies patches, a write based on the daemon's current snapshot is
// validated against it and written entry by entry, without reading the
// whole policy; a snapshot behind the store falls back to the whole policy.
func TestAdminWritesPatchesAgainstTheDaemonsSnapshot(t *testing.T) {
	newFixture := func(t *testing.T, storeGen uint64) (*adminFixture, *patchStore) {
		var ps *patchStore
		f := newAdminFixtureOn(t, &fakeStore{policy: adminPolicy(), gen: storeGen}, func(s *fakeStore) enforce.PolicyStore {
			ps = &patchStore{fakeStore: s}
			return ps
		})
		return f, ps
	}
	t.Run("a delegation on the current generation is written as a patch", func(t *testing.T) {
		f, ps := newFixture(t, 1)
		r := f.do(t, "PUT", "/v1/users/dave", "alice", `"1"`, `{"id":"dave","profile":"teacher","queues":["sales"]}`)
		if r.code != 200 || r.hdr.Get("ETag") != `"2"` || !strings.Contains(r.body, `"changed_users":["dave"]`) {
			t.Fatalf("code %d ETag %q body %s", r.code, r.hdr.Get("ETag"), r.body)
		}
		if ps.patches != 1 || f.store.reads != 0 {
			t.Fatalf("%d patches, %d whole-policy reads; want 1 and 0", ps.patches, f.store.reads)
		}
		if _, u := findUserIn(f.store.policy, "dave"); u == nil || u.Profile != "teacher" {
			t.Fatalf("stored dave = %+v", u)
		}
	})
	t.Run("a snapshot behind the store falls back to the whole policy", func(t *testing.T) {
		f, ps := newFixture(t, 2)
		r := f.do(t, "PUT", "/v1/users/dave", "alice", `"2"`, `{"id":"dave","profile":"teacher","queues":["sales"]}`)
		if r.code != 200 || r.hdr.Get("ETag") != `"3"` {
			t.Fatalf("code %d ETag %q body %s", r.code, r.hdr.Get("ETag"), r.body)
		}
		if ps.patches != 0 || f.store.reads != 1 || f.store.applies != 1 {
			t.Fatalf("%d patches, %d reads, %d applies; want 0, 1, 1", ps.patches, f.store.reads, f.store.applies)
		}
	})
	t.Run("a patch that leaves the policy invalid is 422 and writes nothing", func(t *testing.T) {
		f, _ := newFixture(t, 1)
		r := f.do(t, "DELETE", "/v1/profiles/teacher", "root", `"1"`, "")
		if r.code != 422 || !strings.Contains(r.body, "still assigned") || f.store.applies != 0 {
			t.Fatalf("code %d body %s, %d applies", r.code, r.body, f.store.applies)
		}
	})
	t.Run("deleting a profile that does not exist is 404", func(t *testing.T) {
		f, _ := newFixture(t, 1)
		r := f.do(t, "DELETE", "/v1/profiles/nope", "root", `"1"`, "")
		if r.code != 404 || f.store.applies != 0 {
			t.Fatalf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("a stale If-Match is 409 before anything is written", func(t *testing.T) {
		f, ps := newFixture(t, 1)
		r := f.do(t, "PUT", "/v1/users/dave", "alice", `"0"`, `{"id":"dave","profile":"teacher","queues":["sales"]}`)
		if r.code != 409 || r.hdr.Get("ETag") != `"1"` || ps.patches != 0 {
			t.Fatalf("code %d ETag %q body %s", r.code, r.hdr.Get("ETag"), r.body)
		}
	})
}

func findUserIn(p enforce.Policy, id string) (int, *enforce.User) {
	for i := range p.Users {
		if p.Users[i].ID == id {
			return i, &p.Users[i]
		}
	}
	return -1, nil
}

func TestAdminDelegation(t *testing.T) {
	cases := []struct {
		name   string
		user   string
		path   string
		method string
		body   string
		code   int
		reason string
	}{
		{"supervisor assigns teacher on a subset of its queues", "alice", "/v1/users/dave", "PUT",
			`{"id":"dave","profile":"teacher","queues":["sales"]}`, 200, ""},
		{"supervisor assigns teacher on all its queues", "alice", "/v1/users/newbie", "PUT",
			`{"id":"newbie","profile":"teacher","queues":["sales","support"]}`, 200, ""},
		{"supervisor assigns teacher outside its queues", "alice", "/v1/users/dave", "PUT",
			`{"id":"dave","profile":"teacher","queues":["sales","billing"]}`, 403, "out_of_scope"},
		{"supervisor assigns teacher with no queue", "alice", "/v1/users/dave", "PUT",
			`{"id":"dave","profile":"teacher"}`, 403, "out_of_scope"},
		{"supervisor assigns administrator", "alice", "/v1/users/dave", "PUT",
			`{"id":"dave","profile":"administrator","queues":["sales"]}`, 403, "profile_not_delegable"},
		{"supervisor changes a user's identities", "alice", "/v1/users/erin", "PUT",
			`{"id":"erin","profile":"teacher","queues":["sales"],"identities":["1099"]}`, 403, "profile_not_delegable"},
		{"supervisor revokes a teacher on its queues", "alice", "/v1/users/bob", "DELETE", "", 200, ""},
		{"supervisor demotes itself", "alice", "/v1/users/alice", "PUT",
			`{"id":"alice","profile":"teacher","queues":["sales"]}`, 403, "profile_not_delegable"},
		{"teacher may not delegate", "bob", "/v1/users/dave", "PUT",
			`{"id":"dave","profile":"teacher","queues":["sales"]}`, 403, "action_not_granted"},
		{"administrator assigns anything", "root", "/v1/users/dave", "PUT",
			`{"id":"dave","profile":"administrator","teams":["t"]}`, 200, ""},
		{"administrator deletes any user", "root", "/v1/users/erin", "DELETE", "", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAdminFixture(t)
			r := f.do(t, tc.method, tc.path, tc.user, `"1"`, tc.body)
			if r.code != tc.code {
				t.Fatalf("code %d, want %d; body %s", r.code, tc.code, r.body)
			}
			rec := f.audit.Last(t)
			if tc.code == 403 {
				b := r.json(t)
				if b["reason"] != tc.reason || b["decision"] != "deny" || b["error"] == "" {
					t.Errorf("body %s, want reason %s", r.body, tc.reason)
				}
				if rec.Decision != "deny" || rec.Reason != tc.reason || f.store.applies != 0 {
					t.Errorf("audit %+v, applies %d", rec, f.store.applies)
				}
				return
			}
			if rec.Decision != "allow" || rec.User != tc.user || !strings.Contains(rec.Detail, "applied") {
				t.Errorf("audit %+v", rec)
			}
		})
	}
}

func TestAdminReads(t *testing.T) {
	f := newAdminFixture(t)
	t.Run("supervisor sees itself and the users of its queues", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/users", "alice", "", "")
		var b adminapi.UsersBody
		if err := json.Unmarshal([]byte(r.body), &b); err != nil || r.code != 200 {
			t.Fatalf("code %d body %s", r.code, r.body)
		}
		var ids []string
		for _, raw := range b.Users {
			var u wireUser
			_ = json.Unmarshal(raw, &u)
			ids = append(ids, u.ID)
		}
		if !slices.Equal(ids, []string{"alice", "bob", "dave"}) {
			t.Errorf("users %v", ids)
		}
	})
	t.Run("supervisor does not see users outside its queues", func(t *testing.T) {
		if r := f.do(t, "GET", "/v1/users/frank", "alice", "", ""); r.code != 404 {
			t.Errorf("code %d", r.code)
		}
	})
	t.Run("administrator sees every user", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/users/frank", "root", "", "")
		if r.code != 200 || r.hdr.Get("ETag") != `"1"` {
			t.Errorf("code %d ETag %q", r.code, r.hdr.Get("ETag"))
		}
	})
	t.Run("protected lists are readable", func(t *testing.T) {
		r := f.do(t, "GET", "/v1/protected", "alice", "", "")
		if r.code != 200 || r.body != `{"users":["ceo"],"queues":[]}`+"\n" {
			t.Errorf("code %d body %q", r.code, r.body)
		}
	})
}

func TestAdminProtected(t *testing.T) {
	t.Run("administrator replaces the protected lists", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/protected", "root", `"1"`, `{"users":["ceo","cfo"],"queues":["hr"]}`)
		if r.code != 200 || !strings.Contains(r.body, `"protected_changed":true`) {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("unknown field is 422 naming it", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/protected", "root", `"1"`, `{"users":["ceo"],"agents":["x"]}`)
		if r.code != 422 || !strings.Contains(r.body, `"field":"agents"`) {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("empty id is 422 with its index", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/protected", "root", `"1"`, `{"users":["ceo",""]}`)
		if r.code != 422 || !strings.Contains(r.body, `"field":"users[1]"`) {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("supervisor may not change them", func(t *testing.T) {
		f := newAdminFixture(t)
		r := f.do(t, "PUT", "/v1/protected", "alice", `"1"`, `{"users":[]}`)
		if r.code != 403 {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
}

func TestAdminStoreFailures(t *testing.T) {
	t.Run("unreachable store is 503 and nothing is allowed", func(t *testing.T) {
		f := newAdminFixture(t)
		f.store.unavailable = true
		for _, r := range []response{
			f.do(t, "GET", "/v1/profiles", "root", "", ""),
			f.do(t, "PUT", "/v1/users/dave", "root", `"1"`, `{"id":"dave","profile":"teacher"}`),
		} {
			if r.code != 503 {
				t.Errorf("code %d body %s", r.code, r.body)
			}
		}
	})
	t.Run("no snapshot is 503", func(t *testing.T) {
		f := newAdminFixture(t)
		f.holder.Store(nil)
		if r := f.do(t, "GET", "/v1/profiles", "root", "", ""); r.code != 503 {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("read-only store is 405 saying so", func(t *testing.T) {
		f := newAdminFixture(t)
		f.store.readOnly = true
		r := f.do(t, "PUT", "/v1/users/dave", "root", `"1"`, `{"id":"dave","profile":"teacher"}`)
		if r.code != 405 || !strings.Contains(r.body, "read-only") {
			t.Errorf("code %d body %s", r.code, r.body)
		}
	})
	t.Run("unsupported method is 405", func(t *testing.T) {
		f := newAdminFixture(t)
		if r := f.do(t, "POST", "/v1/profiles", "root", "", "{}"); r.code != 405 {
			t.Errorf("code %d", r.code)
		}
	})
}

func TestAdminAudit(t *testing.T) {
	f := newAdminFixture(t)
	for _, r := range []enforce.AuditRecord{
		{Time: now, Source: "asterisk", User: "alice", Action: "monitor.listen", Target: "dave", Decision: "allow", Reason: "granted", Caller: "+33 1 23 45 67 89"},
		{Time: now, Source: "asterisk", User: "root", Action: "monitor.listen", Target: "dave", Decision: "allow", Reason: "granted", Caller: "+33 1 23 45 67 89"},
		{Time: now, Source: "http", User: "alice", Action: "monitor.barge", Target: "frank", Decision: "deny", Reason: "out_of_scope"},
	} {
		_ = f.audit.Audit(context.Background(), r)
	}
	read := func(t *testing.T, user, query string) (int, []enforce.AuditRecord, string) {
		t.Helper()
		r := f.do(t, "GET", "/v1/audit"+query, user, "", "")
		var b adminapi.AuditBody
		_ = json.Unmarshal([]byte(r.body), &b)
		return r.code, b.Records, r.body
	}
	t.Run("supervisor reads its own records with callers masked per its profile", func(t *testing.T) {
		code, recs, body := read(t, "alice", "")
		if code != 200 || len(recs) != 2 {
			t.Fatalf("code %d body %s", code, body)
		}
		if recs[0].Caller != "+33 1 23 45 ** **" {
			t.Errorf("caller %q, want the last 4 digits masked", recs[0].Caller)
		}
	})
	t.Run("administrator reads every record unmasked", func(t *testing.T) {
		code, recs, body := read(t, "root", "?target=dave")
		if code != 200 || len(recs) != 2 || recs[0].Caller != "+33 1 23 45 67 89" {
			t.Errorf("code %d body %s", code, body)
		}
	})
	t.Run("filters apply", func(t *testing.T) {
		_, recs, body := read(t, "root", "?decision=deny&user=alice")
		if len(recs) != 1 || recs[0].Action != "monitor.barge" {
			t.Errorf("body %s", body)
		}
	})
	t.Run("supervisor may not read another user's records", func(t *testing.T) {
		if code, _, body := read(t, "alice", "?user=root"); code != 403 {
			t.Errorf("code %d body %s", code, body)
		}
	})
	t.Run("bad filter is 400", func(t *testing.T) {
		for _, q := range []string{"?decision=maybe", "?since=yesterday", "?limit=0", "?quene=x"} {
			if code, _, body := read(t, "root", q); code != 400 {
				t.Errorf("%s: code %d body %s", q, code, body)
			}
		}
	})
}

func TestAdminRecordings(t *testing.T) {
	f := newAdminFixture(t)
	f.recs["r1"] = enforce.Recording{ID: "r1", Queue: "sales", Target: "dave", Caller: "0612345678", StartedAt: now.Add(-time.Hour), State: enforce.RecordingStopped}
	f.recs["r2"] = enforce.Recording{ID: "r2", Queue: "billing", Target: "frank", Caller: "0612345678", StartedAt: now.Add(-time.Hour)}
	for _, tc := range []struct {
		name, path, user string
		code             int
		key, value       string // key "": the status alone is checked
	}{
		{"supervisor reads a recording of its queue, caller masked", "/v1/recordings/r1", "alice", 200, "caller", "061234****"},
		{"supervisor may not read a recording of another queue", "/v1/recordings/r2", "alice", 403, "reason", "out_of_scope"},
		{"unknown recording is 404", "/v1/recordings/nope", "root", 404, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.do(t, "GET", tc.path, tc.user, "", "").wantField(t, tc.code, tc.key, tc.value)
		})
	}
}

// TestCheckTokenOpensNoAdminEndpoint: a check token, valid for
// /v1/check, is refused by every admin route.
func TestCheckTokenOpensNoAdminEndpoint(t *testing.T) {
	af := newAdminFixture(t)
	r := af.do(t, "GET", "/v1/profiles", "pbx", "", "")
	if r.code != http.StatusForbidden || !strings.Contains(r.body, "cannot use the admin API") {
		t.Errorf("GET /v1/profiles with a check token: %d %s", r.code, r.body)
	}
}
