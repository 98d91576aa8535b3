package httpapi

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

// FormatDiff renders a diff one change per line, "+ profile teacher",
// "- user bob", "~ user alice", "~ protected", the form `callwarden
// profiles apply` prints and the audit trail records.
func FormatDiff(d enforce.PolicyDiff) []string {
	var out []string
	add := func(sign, kind string, names []string) {
		for _, n := range names {
			out = append(out, sign+" "+kind+" "+n)
		}
	}
	add("+", "profile", d.AddedProfiles)
	add("-", "profile", d.RemovedProfiles)
	add("~", "profile", d.ChangedProfiles)
	add("+", "user", d.AddedUsers)
	add("-", "user", d.RemovedUsers)
	add("~", "user", d.ChangedUsers)
	if d.ProtectedChanged {
		out = append(out, "~ protected")
	}
	return out
}

// reader checks that the requester may read at all (a known user with a
// profile, inside its assignment's validity period) and says whether it is
// an administrator. On false it has answered 403.
func (a *Admin) reader(w http.ResponseWriter, p *principal) (admin, ok bool) {
	req, d := p.admin()
	if d.Allow {
		return true, true
	}
	if d.Profile == "" || (d.Reason == enforce.ReasonOutsideWindow && d.Grant < 0) {
		a.forbid(w, p, req, d, "the admin API needs a user with a profile")
		return false, false
	}
	return false, true
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

func (a *Admin) listProfiles(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, ok := a.reader(w, p); !ok {
		return
	}
	pol, gen, ok := a.readPolicy(w, r)
	if !ok {
		return
	}
	body := ProfilesBody{Generation: gen, Profiles: []json.RawMessage{}}
	for _, pr := range pol.Profiles {
		raw, err := a.opts.Codec.EncodeProfile(pr)
		if err != nil {
			a.encodeFailed(w, err)
			return
		}
		body.Profiles = append(body.Profiles, raw)
	}
	w.Header().Set("ETag", etag(gen))
	writeJSON(w, http.StatusOK, body)
}

func (a *Admin) getProfile(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, ok := a.reader(w, p); !ok {
		return
	}
	pol, gen, ok := a.readPolicy(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(pol.Profiles, func(pr enforce.Profile) bool { return pr.Name == name })
	if i < 0 {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no profile %q", name)})
		return
	}
	raw, err := a.opts.Codec.EncodeProfile(pol.Profiles[i])
	if err != nil {
		a.encodeFailed(w, err)
		return
	}
	w.Header().Set("ETag", etag(gen))
	writeJSON(w, http.StatusOK, raw)
}

func (a *Admin) encodeFailed(w http.ResponseWriter, err error) {
	a.log.Error("admin: encode policy entry", zap.Error(err))
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: "cannot encode the stored policy"})
}

// write is one conditional change: the requester's authorization, the
// generation it was based on and how to build the new policy.
type write struct {
	target string
	ifGen  uint64
	view   *policyView
	req    enforce.Request
	d      enforce.Decision
	why    string
	// missing, when set, answers 404 once the change is authorized.
	missing error
	// patch is the change entry by entry: applied as is to the store when
	// view.base is set, otherwise to view.pol to make the whole new policy.
	patch enforce.PolicyPatch
}

// commit carries out a write: 403 when the engine refused, 409 when the
// If-Match generation is stale, 422 when the new policy is invalid, else
// ApplyPolicy or ApplyPatch (compare-and-set on the same generation). Every outcome
// after authentication is audited.
func (a *Admin) commit(w http.ResponseWriter, r *http.Request, p *principal, c write) {
	// A write based on another generation than the store's cannot be
	// applied, whoever asks: 409 before the decision, which was taken on
	// the store's generation, not the one the write names.
	if c.ifGen != c.view.gen {
		a.audit(r, p, c.target, c.d, fmt.Sprintf("not applied: If-Match generation %d, store at %d", c.ifGen, c.view.gen))
		a.conflict(w, c.view.gen, fmt.Sprintf("the policy changed: you based your change on generation %d, the store is at %d; GET it again", c.ifGen, c.view.gen))
		return
	}
	if !c.d.Allow {
		a.audit(r, p, c.target, c.d, "refused: "+c.why)
		a.log.Info("admin change refused", zap.String("user", p.user), zap.String("target", c.target),
			zap.String("reason", c.d.Reason.String()), zap.String("method", r.Method), zap.String("path", r.URL.Path))
		a.forbid(w, p, c.req, c.d, c.why)
		return
	}
	if c.missing != nil {
		a.audit(r, p, c.target, c.d, "not applied: not found")
		writeJSON(w, http.StatusNotFound, errorBody{Error: c.missing.Error()})
		return
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	var (
		gen  uint64
		diff enforce.PolicyDiff
		err  error
	)
	if base := c.view.base; base != nil {
		if _, err := base.Patch(c.patch, base.Generation()+1); err != nil {
			a.audit(r, p, c.target, c.d, "not applied: the resulting policy is invalid")
			writeValidation(w, validationFields(err))
			return
		}
		gen, diff, err = a.opts.Store.(enforce.PatchStore).ApplyPatch(ctx, base, c.patch)
	} else {
		next := c.patch.Apply(c.view.pol)
		if _, verr := enforce.NewSnapshot(next, 0); verr != nil {
			a.audit(r, p, c.target, c.d, "not applied: the resulting policy is invalid")
			writeValidation(w, validationFields(verr))
			return
		}
		gen, diff, err = a.opts.Store.ApplyPolicy(ctx, next, enforce.IfGeneration(c.ifGen))
	}
	switch {
	case err == nil:
	case errors.Is(err, enforce.ErrConflict):
		a.audit(r, p, c.target, c.d, "not applied: generation conflict")
		a.conflict(w, gen, "the policy changed while applying; GET it again")
		return
	case errors.Is(err, enforce.ErrReadOnly):
		a.audit(r, p, c.target, c.d, "not applied: store is read-only")
		readOnly(w)
		return
	default:
		a.audit(r, p, c.target, c.d, "not applied: store error")
		a.storeFailed(w, r, err)
		return
	}
	summary := "no change"
	if lines := FormatDiff(diff); len(lines) > 0 {
		summary = strings.Join(lines, ", ")
	}
	a.audit(r, p, c.target, c.d, fmt.Sprintf("applied generation %d -> %d: %s", c.ifGen, gen, summary))
	a.log.Info("admin change applied", zap.String("user", p.user), zap.String("target", c.target),
		zap.Uint64("generation", gen), zap.String("diff", summary))
	w.Header().Set("ETag", etag(gen))
	writeJSON(w, http.StatusOK, ChangeBody{Generation: gen, Diff: diff})
}

// readOnly answers a write to a read-only store.
func readOnly(w http.ResponseWriter) {
	w.Header().Set("Allow", "GET")
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "read-only: this daemon serves a profiles file; edit the file (or apply it to Redis) instead"})
}

// conflictBody is the 409 answer.
type conflictBody struct {
	Error      string `json:"error"`
	Generation uint64 `json:"generation,omitempty"`
}

func (a *Admin) conflict(w http.ResponseWriter, gen uint64, msg string) {
	if gen > 0 {
		w.Header().Set("ETag", etag(gen))
	}
	writeJSON(w, http.StatusConflict, conflictBody{Error: msg, Generation: gen})
}

// precondition reads If-Match; on false it has answered 428 or 400.
func precondition(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	gen, err := ifMatch(r)
	switch {
	case errors.Is(err, errNoIfMatch):
		writeJSON(w, http.StatusPreconditionRequired, errorBody{Error: err.Error()})
		return 0, false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return 0, false
	}
	return gen, true
}

// prepare runs the common first steps of a write: If-Match, body, the
// view of the policy the change is based on (view), and the requester as
// decided from that view's policy (wp). The daemon's snapshot may lag
// the store (a change not yet propagated): a supervisor demoted in the
// store must not write on the strength of the daemon's older snapshot,
// so every write is authorized on the policy of the generation it is
// applied on, and applied with compare-and-set on that generation. On
// false it has answered.
func (a *Admin) prepare(w http.ResponseWriter, r *http.Request, p *principal, wantBody bool) (ifGen uint64, body []byte, v *policyView, wp *principal, ok bool) {
	// A read-only store (profiles files) refuses every write before
	// anything else is looked at: no If-Match, body or authorization can
	// make it succeed.
	if err := a.opts.Store.Writable(); errors.Is(err, enforce.ErrReadOnly) {
		readOnly(w)
		return 0, nil, nil, nil, false
	}
	if ifGen, ok = precondition(w, r); !ok {
		return
	}
	if wantBody {
		if body, ok = a.readBody(w, r); !ok {
			return
		}
	}
	if v, ok = a.view(w, r); !ok {
		return
	}
	snap, err := v.snapshot()
	if err != nil {
		a.log.Error("admin: the stored policy does not compile", zap.Uint64("generation", v.gen), zap.Error(err))
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "the stored policy is invalid; fix it with `callwarden profiles apply`"})
		return 0, nil, nil, nil, false
	}
	wp = &principal{user: p.user, snap: snap, now: p.now}
	return ifGen, body, v, wp, true
}

// view returns what a write is based on. When the store applies patches
// and the daemon's snapshot is of the store's current generation, that
// snapshot: one cheap generation read, and no read of the whole policy.
// Otherwise the whole stored policy. On false it has answered.
func (a *Admin) view(w http.ResponseWriter, r *http.Request) (*policyView, bool) {
	if ps, ok := a.opts.Store.(enforce.PatchStore); ok {
		if snap := a.opts.Snapshot(); snap != nil {
			ctx, cancel := a.storeContext(r)
			gen, err := ps.Generation(ctx)
			cancel()
			if err != nil {
				a.storeFailed(w, r, err)
				return nil, false
			}
			if gen == snap.Generation() {
				return &policyView{gen: gen, base: snap}, true
			}
		}
	}
	pol, gen, ok := a.readPolicy(w, r)
	if !ok {
		return nil, false
	}
	return &policyView{gen: gen, pol: pol}, true
}

// decodeFailed answers a body the codec rejected.
func decodeFailed(w http.ResponseWriter, err error) {
	writeValidation(w, validationFields(err))
}

func profileNames(p enforce.Policy) []string {
	out := make([]string, len(p.Profiles))
	for i, pr := range p.Profiles {
		out[i] = pr.Name
	}
	return out
}

func (a *Admin) putProfile(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	ifGen, body, v, p, ok := a.prepare(w, r, p, true)
	if !ok {
		return
	}
	pr, err := a.opts.Codec.DecodeProfile(body, v.profileNames())
	if err != nil {
		decodeFailed(w, err)
		return
	}
	if pr.Name != name {
		writeValidation(w, []FieldError{{Field: "name", Message: fmt.Sprintf("%q does not match the URL's profile %q", pr.Name, name)}})
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
	admin, ok := a.reader(w, p)
	if !ok {
		return
	}
	pol, gen, ok := a.readPolicy(w, r)
	if !ok {
		return
	}
	body := UsersBody{Generation: gen, Users: []json.RawMessage{}}
	for _, u := range pol.Users {
		if !admin && !visibleUser(p, u) {
			continue
		}
		raw, err := a.opts.Codec.EncodeUser(u)
		if err != nil {
			a.encodeFailed(w, err)
			return
		}
		body.Users = append(body.Users, raw)
	}
	w.Header().Set("ETag", etag(gen))
	writeJSON(w, http.StatusOK, body)
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
	admin, ok := a.reader(w, p)
	if !ok {
		return
	}
	pol, gen, ok := a.readPolicy(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	_, u := findUser(pol, id)
	if u == nil || (!admin && !visibleUser(p, *u)) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no user %q", id)})
		return
	}
	raw, err := a.opts.Codec.EncodeUser(*u)
	if err != nil {
		a.encodeFailed(w, err)
		return
	}
	w.Header().Set("ETag", etag(gen))
	writeJSON(w, http.StatusOK, raw)
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
	ifGen, body, v, p, ok := a.prepare(w, r, p, true)
	if !ok {
		return
	}
	u, err := a.opts.Codec.DecodeUser(body, v.profileNames())
	if err != nil {
		decodeFailed(w, err)
		return
	}
	if u.ID != id {
		writeValidation(w, []FieldError{{Field: "id", Message: fmt.Sprintf("%q does not match the URL's user %q", u.ID, id)}})
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
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no user %q", id)})
		return
	}
	req, d, why := p.authorizeUserChange(old, nil)
	a.commit(w, r, p, write{
		target: id, ifGen: ifGen, view: v, req: req, d: d, why: why,
		patch: enforce.PolicyPatch{RemovedUsers: []string{id}},
	})
}

func (a *Admin) getProtected(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, ok := a.reader(w, p); !ok {
		return
	}
	pol, gen, ok := a.readPolicy(w, r)
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
	w.Header().Set("ETag", etag(gen))
	writeJSON(w, http.StatusOK, body)
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
