package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// The wire form of the policy, schema version 1. One JSON document per
// profile and per user, so an apply writes only what changed. Field names
// follow the profiles file. Changing a field's meaning needs a new schema
// version (see SchemaVersion).
type (
	wireProfile struct {
		Name         string      `json:"name"`
		Grants       []wireGrant `json:"grants,omitempty"`
		NotifyTarget bool        `json:"notify_target,omitempty"`
		MaskDigits   int         `json:"mask_digits,omitempty"`
	}
	wireGrant struct {
		Actions        []string             `json:"actions"`
		Scopes         map[string]wireScope `json:"scopes,omitempty"`
		Profiles       []string             `json:"profiles,omitempty"`
		ValidFrom      time.Time            `json:"valid_from,omitzero"`
		ValidUntil     time.Time            `json:"valid_until,omitzero"`
		Hours          *wireHours           `json:"hours,omitempty"`
		RecordedWithin string               `json:"recorded_within,omitempty"`
		MaxDuration    string               `json:"max_duration,omitempty"`
		MaxPause       string               `json:"max_pause,omitempty"`
	}
	wireScope struct {
		Kind   string   `json:"kind"`
		Values []string `json:"values,omitempty"`
	}
	wireHours struct {
		Days []string `json:"days"`
		From int      `json:"from"`
		To   int      `json:"to"`
		TZ   string   `json:"tz,omitempty"`
	}
	wireUser struct {
		ID         string    `json:"id"`
		Profile    string    `json:"profile,omitempty"`
		Queues     []string  `json:"queues,omitempty"`
		Teams      []string  `json:"teams,omitempty"`
		Agents     []string  `json:"agents,omitempty"`
		Sites      []string  `json:"sites,omitempty"`
		Identities []string  `json:"identities,omitempty"`
		ValidFrom  time.Time `json:"valid_from,omitzero"`
		ValidUntil time.Time `json:"valid_until,omitzero"`
	}
	wireProtected struct {
		Users  []string `json:"users,omitempty"`
		Queues []string `json:"queues,omitempty"`
	}
)

var (
	scopeKindNames = map[enforce.ScopeKind]string{
		enforce.ScopeList: "list", enforce.ScopeAll: "all", enforce.ScopeAssigned: "assigned", enforce.ScopeSelf: "self",
	}
	dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

// Encoded is a policy in wire form: JSON per entry, keyed by name.
type Encoded struct {
	Profiles  map[string]string
	Users     map[string]string
	Protected string
}

// EncodePolicy turns p into its wire form. It fails on what the wire form
// cannot carry (a time zone that is not an IANA name).
func EncodePolicy(p enforce.Policy) (Encoded, error) {
	e := Encoded{Profiles: make(map[string]string, len(p.Profiles)), Users: make(map[string]string, len(p.Users))}
	zones := zoneCache{}
	for _, pr := range p.Profiles {
		w := wireProfile{Name: pr.Name, NotifyTarget: pr.NotifyTarget, MaskDigits: pr.MaskDigits}
		for gi, g := range pr.Grants {
			wg, err := encodeGrant(g, zones)
			if err != nil {
				return Encoded{}, fmt.Errorf("profile %q grant %d: %w", pr.Name, gi, err)
			}
			w.Grants = append(w.Grants, wg)
		}
		b, err := json.Marshal(w)
		if err != nil {
			return Encoded{}, fmt.Errorf("profile %q: %w", pr.Name, err)
		}
		e.Profiles[pr.Name] = string(b)
	}
	for _, u := range p.Users {
		b, err := json.Marshal(wireUser{ID: u.ID, Profile: u.Profile, Queues: u.Queues, Teams: u.Teams,
			Agents: u.Agents, Sites: u.Sites, Identities: u.Identities, ValidFrom: u.ValidFrom, ValidUntil: u.ValidUntil})
		if err != nil {
			return Encoded{}, fmt.Errorf("user %q: %w", u.ID, err)
		}
		e.Users[u.ID] = string(b)
	}
	b, err := json.Marshal(wireProtected{Users: p.Protected.Users, Queues: p.Protected.Queues})
	if err != nil {
		return Encoded{}, fmt.Errorf("protected: %w", err)
	}
	e.Protected = string(b)
	return e, nil
}

func encodeGrant(g enforce.Grant, zones zoneCache) (wireGrant, error) {
	w := wireGrant{Profiles: g.Profiles, ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil}
	for _, a := range g.Actions.List() {
		w.Actions = append(w.Actions, a.String())
	}
	for d, sc := range g.Scopes {
		if sc.Kind == enforce.ScopeUnset {
			continue
		}
		name, ok := scopeKindNames[sc.Kind]
		if !ok {
			return wireGrant{}, fmt.Errorf("%s: unknown scope kind %d", enforce.Dimension(d), sc.Kind)
		}
		if w.Scopes == nil {
			w.Scopes = make(map[string]wireScope, 1)
		}
		w.Scopes[enforce.Dimension(d).String()] = wireScope{Kind: name, Values: sc.Values}
	}
	if h := g.Hours; h != nil {
		wh := &wireHours{From: h.From, To: h.To}
		for i, on := range h.Days {
			if on {
				wh.Days = append(wh.Days, dayNames[i])
			}
		}
		if h.Location != nil {
			wh.TZ = h.Location.String()
			if _, err := zones.load(wh.TZ); err != nil {
				return wireGrant{}, fmt.Errorf("hours: tz: %w", err)
			}
		}
		w.Hours = wh
	}
	if g.RecordedWithin != 0 {
		w.RecordedWithin = g.RecordedWithin.String()
	}
	if g.MaxDuration != 0 {
		w.MaxDuration = g.MaxDuration.String()
	}
	if g.MaxPause != 0 {
		w.MaxPause = g.MaxPause.String()
	}
	return w, nil
}

// zoneCache loads each IANA zone once per encode or decode.
type zoneCache map[string]zoneResult

type zoneResult struct {
	loc *time.Location
	err error
}

func (c zoneCache) load(name string) (*time.Location, error) {
	if r, ok := c[name]; ok {
		return r.loc, r.err
	}
	loc, err := time.LoadLocation(name)
	if err == nil && (name == "" || name == "Local") {
		loc, err = nil, fmt.Errorf("time zone %q is not portable between daemons", name)
	}
	c[name] = zoneResult{loc, err}
	return loc, err
}

// IgnoredAction is an action name a stored grant lists that this version
// does not know, dropped by DecodePolicy.
type IgnoredAction struct {
	Profile string
	Grant   int
	Action  string
}

// DecodePolicy builds a policy from its wire form, profiles sorted by name
// and users by id. What it does not know decides what it does, because
// the store may have been written by a newer callwarden or by hand:
//   - An action name this version does not know is dropped from its grant
//     and returned in ignored (the caller logs and counts it): the model
//     is allow-only and this version can never be asked for that action,
//     so dropping it never widens what the grant allows here. A grant left with no known action
//     grants nothing and is dropped whole, so the indexes of the grants
//     after it (Decision.Grant, audit records) shift down by one on this
//     version.
//   - Anything else it does not know (a scope dimension or kind, a day,
//     a field of any entry) may restrict a grant, so dropping it could
//     widen access: the entry is refused (enforce.ErrCorrupt) and so is the load.
func DecodePolicy(profiles, users map[string]string, protected string) (p enforce.Policy, ignored []IgnoredAction, err error) {
	zones := zoneCache{}
	p.Profiles = make([]enforce.Profile, 0, len(profiles))
	for name, raw := range profiles {
		var w wireProfile
		if err := unmarshalStrict(raw, &w); err != nil {
			return enforce.Policy{}, nil, fmt.Errorf("%w: profile %q: %w", enforce.ErrCorrupt, name, err)
		}
		pr := enforce.Profile{Name: w.Name, NotifyTarget: w.NotifyTarget, MaskDigits: w.MaskDigits}
		if w.Name != name {
			return enforce.Policy{}, nil, fmt.Errorf("%w: profile %q: stored under name %q", enforce.ErrCorrupt, w.Name, name)
		}
		for gi, wg := range w.Grants {
			g, unknown, err := decodeGrant(wg, zones)
			if err != nil {
				return enforce.Policy{}, nil, fmt.Errorf("%w: profile %q grant %d: %w", enforce.ErrCorrupt, name, gi, err)
			}
			for _, a := range unknown {
				ignored = append(ignored, IgnoredAction{Profile: name, Grant: gi, Action: a})
			}
			if g.Actions == 0 && len(unknown) > 0 {
				continue // only actions this version does not know: grants nothing here
			}
			pr.Grants = append(pr.Grants, g)
		}
		p.Profiles = append(p.Profiles, pr)
	}
	p.Users = make([]enforce.User, 0, len(users))
	for id, raw := range users {
		var w wireUser
		if err := unmarshalStrict(raw, &w); err != nil {
			return enforce.Policy{}, nil, fmt.Errorf("%w: user %q: %w", enforce.ErrCorrupt, id, err)
		}
		if w.ID != id {
			return enforce.Policy{}, nil, fmt.Errorf("%w: user %q: stored under id %q", enforce.ErrCorrupt, w.ID, id)
		}
		p.Users = append(p.Users, enforce.User{ID: w.ID, Profile: w.Profile, Queues: w.Queues, Teams: w.Teams,
			Agents: w.Agents, Sites: w.Sites, Identities: w.Identities, ValidFrom: w.ValidFrom, ValidUntil: w.ValidUntil})
	}
	if protected != "" {
		var w wireProtected
		if err := unmarshalStrict(protected, &w); err != nil {
			return enforce.Policy{}, nil, fmt.Errorf("%w: protected: %w", enforce.ErrCorrupt, err)
		}
		p.Protected = enforce.Protected{Users: w.Users, Queues: w.Queues}
	}
	p.Sort()
	return p, ignored, nil
}

// unmarshalStrict decodes one stored JSON document, refusing fields the
// wire form does not have (they may restrict what the entry grants) and
// anything after the document.
func unmarshalStrict(raw string, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON document")
	}
	return nil
}

// decodeGrant decodes one grant; unknown lists the action names it lists
// that this version does not know, dropped (see DecodePolicy).
func decodeGrant(w wireGrant, zones zoneCache) (g enforce.Grant, unknown []string, err error) {
	g = enforce.Grant{Profiles: w.Profiles, ValidFrom: w.ValidFrom, ValidUntil: w.ValidUntil}
	for _, name := range w.Actions {
		a, err := enforce.ParseAction(name)
		if err != nil {
			unknown = append(unknown, name)
			continue
		}
		g.Actions |= enforce.NewActionSet(a)
	}
	if len(unknown) > 0 && !g.Actions.Has(enforce.ProfileAssign) {
		// The profiles a grant lists only bound what profile.assign may
		// hand out; without it (it was one of the unknown actions) they
		// grant nothing here.
		g.Profiles = nil
	}
	for dim, ws := range w.Scopes {
		d, ok := parseDimension(dim)
		if !ok {
			return enforce.Grant{}, nil, fmt.Errorf("scopes: unknown dimension %q", dim)
		}
		kind, ok := parseScopeKind(ws.Kind)
		if !ok {
			return enforce.Grant{}, nil, fmt.Errorf("%s: unknown scope kind %q", dim, ws.Kind)
		}
		g.Scopes[d] = enforce.Scope{Kind: kind, Values: ws.Values}
	}
	if wh := w.Hours; wh != nil {
		h := &enforce.Weekly{From: wh.From, To: wh.To}
		for _, day := range wh.Days {
			i := slices.Index(dayNames[:], day)
			if i < 0 {
				return enforce.Grant{}, nil, fmt.Errorf("hours: unknown day %q", day)
			}
			h.Days[i] = true
		}
		if wh.TZ != "" {
			loc, err := zones.load(wh.TZ)
			if err != nil {
				return enforce.Grant{}, nil, fmt.Errorf("hours: tz: %w", err)
			}
			h.Location = loc
		}
		g.Hours = h
	}
	if w.RecordedWithin != "" {
		d, err := time.ParseDuration(w.RecordedWithin)
		if err != nil {
			return enforce.Grant{}, nil, fmt.Errorf("recorded_within: %w", err)
		}
		g.RecordedWithin = d
	}
	for _, l := range [...]struct {
		name, s string
		dst     *time.Duration
	}{{"max_duration", w.MaxDuration, &g.MaxDuration}, {"max_pause", w.MaxPause, &g.MaxPause}} {
		if l.s == "" {
			continue
		}
		d, err := time.ParseDuration(l.s)
		if err != nil {
			return enforce.Grant{}, nil, fmt.Errorf("%s: %w", l.name, err)
		}
		*l.dst = d
	}
	return g, unknown, nil
}

func parseDimension(s string) (int, bool) {
	for d := enforce.DimQueues; d <= enforce.DimSites; d++ {
		if d.String() == s {
			return int(d), true
		}
	}
	return 0, false
}

func parseScopeKind(s string) (enforce.ScopeKind, bool) {
	for k, name := range scopeKindNames {
		if name == s {
			return k, true
		}
	}
	return 0, false
}

// Normalize validates p, then round-trips it through the wire form: what
// a writable store keeps is exactly what it will return.
func Normalize(p enforce.Policy) (enforce.Policy, Encoded, error) {
	if _, err := enforce.NewSnapshot(p, 0); err != nil {
		return enforce.Policy{}, Encoded{}, fmt.Errorf("%w: %w", enforce.ErrInvalidPolicy, err)
	}
	e, err := EncodePolicy(p)
	if err != nil {
		return enforce.Policy{}, Encoded{}, fmt.Errorf("%w: %w", enforce.ErrInvalidPolicy, err)
	}
	n, _, err := DecodePolicy(e.Profiles, e.Users, e.Protected)
	if err != nil {
		return enforce.Policy{}, Encoded{}, fmt.Errorf("%w: %w", enforce.ErrInvalidPolicy, err)
	}
	return n, e, nil
}

// NormalizePatch round-trips a patch's entries through the wire form, as
// Normalize does for a whole policy.
func NormalizePatch(p enforce.PolicyPatch) (enforce.PolicyPatch, Encoded, error) {
	var prot enforce.Protected
	if p.Protected != nil {
		prot = *p.Protected
	}
	enc, err := EncodePolicy(enforce.Policy{Profiles: p.Profiles, Users: p.Users, Protected: prot})
	if err != nil {
		return enforce.PolicyPatch{}, Encoded{}, fmt.Errorf("%w: %w", enforce.ErrInvalidPolicy, err)
	}
	if len(enc.Profiles) != len(p.Profiles) || len(enc.Users) != len(p.Users) {
		return enforce.PolicyPatch{}, Encoded{}, fmt.Errorf("%w: an entry is put twice", enforce.ErrInvalidPolicy)
	}
	dec, _, err := DecodePolicy(enc.Profiles, enc.Users, enc.Protected)
	if err != nil {
		return enforce.PolicyPatch{}, Encoded{}, fmt.Errorf("%w: %w", enforce.ErrInvalidPolicy, err)
	}
	n := enforce.PolicyPatch{Profiles: dec.Profiles, Users: dec.Users,
		RemovedProfiles: p.RemovedProfiles, RemovedUsers: p.RemovedUsers}
	if p.Protected != nil {
		n.Protected = &dec.Protected
	}
	return n, enc, nil
}

// PreparePatch is the first step of every backend's ApplyPatch: it
// normalises p's entries (NormalizePatch), checks that base patched with
// them is a valid policy (enforce.ErrInvalidPolicy otherwise), and returns
// the encoded entries, what the patch changes against base (diff) and the
// part of it that takes effect (eff), as base.PatchDiff.
func PreparePatch(base *enforce.Snapshot, p enforce.PolicyPatch) (enc Encoded, diff enforce.PolicyDiff, eff enforce.PolicyPatch, err error) {
	n, enc, err := NormalizePatch(p)
	if err != nil {
		return enc, diff, eff, err
	}
	if _, err := base.Patch(n, base.Generation()+1); err != nil {
		return enc, diff, eff, fmt.Errorf("%w: %w", enforce.ErrInvalidPolicy, err)
	}
	diff, eff = base.PatchDiff(n)
	return enc, diff, eff, nil
}
