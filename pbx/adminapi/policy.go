package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// ProfilesBody is the answer to GET /v1/profiles.
type ProfilesBody struct {
	Generation uint64            `json:"generation"`
	Profiles   []json.RawMessage `json:"profiles"`
}

// UsersBody is the answer to GET /v1/users.
type UsersBody struct {
	Generation uint64            `json:"generation"`
	Users      []json.RawMessage `json:"users"`
}

// ProtectedBody is the body of GET and PUT /v1/protected.
type ProtectedBody struct {
	Users  []string `json:"users"`
	Queues []string `json:"queues"`
}

// ChangeBody is the answer to a successful write: the new generation (also
// the new ETag) and what changed.
type ChangeBody struct {
	Generation uint64             `json:"generation"`
	Diff       enforce.PolicyDiff `json:"diff"`
}

// reader checks that the requester may read at all (a known user with a
// profile, inside its assignment's validity period) and says whether it is
// an administrator. On false it has answered 403.
func (a *Admin) reader(w http.ResponseWriter, p *principal) (admin, ok bool) {
	if admin, ok = readerKind(p); !ok {
		req, d := p.admin()
		a.forbid(w, p, req, d, "the admin API needs a user with a profile")
	}
	return admin, ok
}

// readerKind says whether p may read the admin API (ok: it has a profile,
// in force) and whether it is an administrator.
func readerKind(p *principal) (admin, ok bool) {
	_, d := p.admin()
	if d.Allow {
		return true, true
	}
	return false, d.Profile != "" && (d.Reason != enforce.ReasonOutsideWindow || d.Grant >= 0)
}

// readPolicy reads the stored policy; on false it has answered.
func (a *Admin) readPolicy(w http.ResponseWriter, r *http.Request) (enforce.Policy, uint64, bool) {
	ctx, cancel := a.storeContext(r)
	defer cancel()
	p, gen, err := a.opts.Store.Policy(ctx)
	if err != nil {
		a.storeFailed(w, r, err)
		return p, 0, false
	}
	return p, gen, true
}

// readPolicyAs runs the common first steps of a read: the requester may
// read at all (reader, which also says whether it is an administrator),
// then the stored policy. On false it has answered.
func (a *Admin) readPolicyAs(w http.ResponseWriter, r *http.Request, p *principal) (pol enforce.Policy, gen uint64, admin, ok bool) {
	if admin, ok = a.reader(w, p); !ok {
		return pol, 0, false, false
	}
	pol, gen, ok = a.readPolicy(w, r)
	return pol, gen, admin, ok
}

// encodeEach encodes the entries keep accepts (every entry when keep is
// nil), in order; never nil, so an empty list is JSON [].
func encodeEach[T any](entries []T, keep func(T) bool, encode func(T) (json.RawMessage, error)) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	for _, e := range entries {
		if keep != nil && !keep(e) {
			continue
		}
		raw, err := encode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}

// answerRead answers a read of generation gen with body, or 500 when
// encoding the stored policy failed (err).
func (a *Admin) answerRead(w http.ResponseWriter, gen uint64, body any, err error) {
	if err != nil {
		a.encodeFailed(w, err)
		return
	}
	w.Header().Set("ETag", etag(gen))
	httpauth.WriteJSON(w, http.StatusOK, body)
}

func (a *Admin) listProfiles(w http.ResponseWriter, r *http.Request, p *principal) {
	pol, gen, _, ok := a.readPolicyAs(w, r, p)
	if !ok {
		return
	}
	raws, err := encodeEach(pol.Profiles, nil, a.opts.Codec.EncodeProfile)
	a.answerRead(w, gen, ProfilesBody{Generation: gen, Profiles: raws}, err)
}

func (a *Admin) getProfile(w http.ResponseWriter, r *http.Request, p *principal) {
	pol, gen, _, ok := a.readPolicyAs(w, r, p)
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(pol.Profiles, func(pr enforce.Profile) bool { return pr.Name == name })
	if i < 0 {
		httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no profile %q", name))
		return
	}
	raw, err := a.opts.Codec.EncodeProfile(pol.Profiles[i])
	a.answerRead(w, gen, raw, err)
}

func (a *Admin) encodeFailed(w http.ResponseWriter, err error) {
	a.log.Error("admin: encode policy entry", zap.Error(err))
	httpauth.WriteError(w, http.StatusInternalServerError, "cannot encode the stored policy")
}

func profileNames(p enforce.Policy) []string {
	out := make([]string, len(p.Profiles))
	for i, pr := range p.Profiles {
		out[i] = pr.Name
	}
	return out
}

// entryPut says how the body of a PUT of one policy entry decodes and
// which of its fields the URL names.
type entryPut[T any] struct {
	decode func(body []byte, profiles []string) (T, error)
	key    func(T) string
	field  string // the key's JSON field
	kind   string // what the URL names: profile, user
}

// prepare runs Admin.prepare for the PUT, decodes the body against the
// profile names of the view the write is based on, and checks that the
// entry's key is want, the one the URL names (422 otherwise). On false it
// has answered.
func (e entryPut[T]) prepare(a *Admin, w http.ResponseWriter, r *http.Request, p *principal, want string) (ifGen uint64, entry T, v *policyView, wp *principal, ok bool) {
	ifGen, body, v, wp, ok := a.prepare(w, r, p, true)
	if !ok {
		return 0, entry, nil, nil, false
	}
	entry, err := e.decode(body, v.profileNames())
	if err != nil {
		decodeFailed(w, err)
		return 0, entry, nil, nil, false
	}
	if got := e.key(entry); got != want {
		writeValidation(w, []FieldError{{Field: e.field, Message: fmt.Sprintf("%q does not match the URL's %s %q", got, e.kind, want)}})
		return 0, entry, nil, nil, false
	}
	return ifGen, entry, v, wp, true
}

func (a *Admin) putProfile(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	ifGen, pr, v, p, ok := entryPut[enforce.Profile]{
		decode: a.opts.Codec.DecodeProfile, key: func(pr enforce.Profile) string { return pr.Name },
		field: "name", kind: "profile",
	}.prepare(a, w, r, p, name)
	if !ok {
		return
	}
	req, d := p.admin()
	a.commit(w, r, p, write{
		target: "profile:" + name, ifGen: ifGen, view: v, req: req, d: d,
		why:   "only an administrator may change profiles",
		patch: enforce.PolicyPatch{Profiles: []enforce.Profile{pr}},
	})
}

func (a *Admin) deleteProfile(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	ifGen, _, v, p, ok := a.prepare(w, r, p, false)
	if !ok {
		return
	}
	req, d := p.admin()
	var missing error
	if !v.hasProfile(name) {
		missing = fmt.Errorf("no profile %q: %w", name, enforce.ErrNotFound)
	}
	a.commit(w, r, p, write{
		target: "profile:" + name, ifGen: ifGen, view: v, req: req, d: d,
		why:     "only an administrator may delete profiles",
		missing: missing,
		patch:   enforce.PolicyPatch{RemovedProfiles: []string{name}},
	})
}

// visibleUser says whether a non-administrator reader sees user u: itself,
// and the users sharing one of its attributed queues (a supervisor sees its
// agents and teachers).
func visibleUser(p *principal, u enforce.User) bool {
	if u.ID == p.user {
		return true
	}
	self, ok := p.snap.User(p.user)
	if !ok {
		return false
	}
	for _, q := range u.Queues {
		if slices.Contains(self.Queues, q) {
			return true
		}
	}
	return false
}

func (a *Admin) listUsers(w http.ResponseWriter, r *http.Request, p *principal) {
	pol, gen, admin, ok := a.readPolicyAs(w, r, p)
	if !ok {
		return
	}
	visible := func(u enforce.User) bool { return admin || visibleUser(p, u) }
	raws, err := encodeEach(pol.Users, visible, a.opts.Codec.EncodeUser)
	a.answerRead(w, gen, UsersBody{Generation: gen, Users: raws}, err)
}

func findUser(pol enforce.Policy, id string) (int, *enforce.User) {
	i := slices.IndexFunc(pol.Users, func(u enforce.User) bool { return u.ID == id })
	if i < 0 {
		return -1, nil
	}
	u := pol.Users[i]
	return i, &u
}

func (a *Admin) getUser(w http.ResponseWriter, r *http.Request, p *principal) {
	pol, gen, admin, ok := a.readPolicyAs(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("id")
	_, u := findUser(pol, id)
	if u == nil || (!admin && !visibleUser(p, *u)) {
		httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no user %q", id))
		return
	}
	raw, err := a.opts.Codec.EncodeUser(*u)
	a.answerRead(w, gen, raw, err)
}

// authorizeUserChange decides a change of one user's entry from old to
// new (nil: the entry does not exist before, or is deleted). An
// administrator may make any change. Anyone else may only delegate: the
// entry's teams, agents, sites and identities must stay as they are, and
// each profile involved must be one the requester may hand out on the
// queues involved: the old profile on the old queues (taking it back) and
// the new profile on the new queues (handing it out), each decided as
// profile.assign by the engine.
func (p *principal) authorizeUserChange(old, new *enforce.User) (enforce.Request, enforce.Decision, string) {
	areq, ad := p.admin()
	if ad.Allow {
		return areq, ad, ""
	}
	var o, n enforce.User
	if old != nil {
		o = *old
	}
	if new != nil {
		n = *new
	}
	if !slices.Equal(o.Teams, n.Teams) || !slices.Equal(o.Agents, n.Agents) ||
		!slices.Equal(o.Sites, n.Sites) || !slices.Equal(o.Identities, n.Identities) {
		return areq, ad, "only an administrator may change a user's teams, agents, sites or identities"
	}
	if o.Profile == "" && n.Profile == "" {
		return areq, ad, "only an administrator may change a user that has no profile and is given none"
	}
	var req enforce.Request
	var d enforce.Decision
	for _, u := range []*enforce.User{&o, &n} {
		if u.Profile == "" {
			continue
		}
		req = enforce.Request{User: p.user, Action: enforce.ProfileAssign, AssignProfile: u.Profile, AssignQueues: u.Queues}
		d = p.decide(req)
		if !d.Allow {
			why := fmt.Sprintf("may not hand out profile %s on queues [%s]", u.Profile, strings.Join(u.Queues, ", "))
			if u == &o {
				why = fmt.Sprintf("may not take back profile %s on queues [%s]", u.Profile, strings.Join(u.Queues, ", "))
			}
			return req, d, why
		}
	}
	return req, d, ""
}

func (a *Admin) putUser(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	ifGen, u, v, p, ok := entryPut[enforce.User]{
		decode: a.opts.Codec.DecodeUser, key: func(u enforce.User) string { return u.ID },
		field: "id", kind: "user",
	}.prepare(a, w, r, p, id)
	if !ok {
		return
	}
	old := v.user(id)
	req, d, why := p.authorizeUserChange(old, &u)
	a.commit(w, r, p, write{
		target: id, ifGen: ifGen, view: v, req: req, d: d, why: why,
		patch: enforce.PolicyPatch{Users: []enforce.User{u}},
	})
}

func (a *Admin) deleteUser(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	ifGen, _, v, p, ok := a.prepare(w, r, p, false)
	if !ok {
		return
	}
	old := v.user(id)
	if old == nil {
		httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no user %q", id))
		return
	}
	req, d, why := p.authorizeUserChange(old, nil)
	a.commit(w, r, p, write{
		target: id, ifGen: ifGen, view: v, req: req, d: d, why: why,
		patch: enforce.PolicyPatch{RemovedUsers: []string{id}},
	})
}

func (a *Admin) getProtected(w http.ResponseWriter, r *http.Request, p *principal) {
	pol, gen, _, ok := a.readPolicyAs(w, r, p)
	if !ok {
		return
	}
	body := ProtectedBody{Users: pol.Protected.Users, Queues: pol.Protected.Queues}
	if body.Users == nil {
		body.Users = []string{}
	}
	if body.Queues == nil {
		body.Queues = []string{}
	}
	a.answerRead(w, gen, body, nil)
}

// decodeProtected parses a protected body strictly: unknown fields, wrong
// types and empty ids are field errors.
func decodeProtected(body []byte) (enforce.Protected, error) {
	var b ProtectedBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return enforce.Protected{}, &ValidationError{Fields: []FieldError{{Field: te.Field, Message: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}}}
		case errors.As(err, &se):
			return enforce.Protected{}, &ValidationError{Fields: []FieldError{{Message: fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)}}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return enforce.Protected{}, &ValidationError{Fields: []FieldError{{Field: f, Message: "unknown field (want users or queues)"}}}
		}
		return enforce.Protected{}, &ValidationError{Fields: []FieldError{{Message: "invalid JSON: " + err.Error()}}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return enforce.Protected{}, &ValidationError{Fields: []FieldError{{Message: "trailing data after the JSON object"}}}
	}
	var fields []FieldError
	for _, l := range []struct {
		name string
		vals []string
	}{{"users", b.Users}, {"queues", b.Queues}} {
		for i, v := range l.vals {
			if strings.TrimSpace(v) == "" {
				fields = append(fields, FieldError{Field: fmt.Sprintf("%s[%d]", l.name, i), Message: "empty id"})
			}
		}
	}
	if len(fields) > 0 {
		return enforce.Protected{}, &ValidationError{Fields: fields}
	}
	return enforce.Protected{Users: b.Users, Queues: b.Queues}, nil
}

func (a *Admin) putProtected(w http.ResponseWriter, r *http.Request, p *principal) {
	ifGen, body, v, p, ok := a.prepare(w, r, p, true)
	if !ok {
		return
	}
	prot, err := decodeProtected(body)
	if err != nil {
		decodeFailed(w, err)
		return
	}
	req, d := p.admin()
	a.commit(w, r, p, write{
		target: "protected", ifGen: ifGen, view: v, req: req, d: d,
		why:   "only an administrator may change the protected lists",
		patch: enforce.PolicyPatch{Protected: &prot},
	})
}
