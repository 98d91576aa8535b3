package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/callwarden/callwarden/enforce"
)

// dpProfile is the profile proposed for one context: the grants of the
// spy lines its phones reach.
type dpProfile struct {
	context, name string
	at            dpInclude // the context's header
	grants        []enforce.Grant
	sources       []string
	users         int
}

// buildProfiles proposes a profile for every context from which a
// translated spy line can be dialled: its own lines, then those of the
// contexts it includes, depth first, each once.
func (t *translator) buildProfiles() []*dpProfile {
	linesOf := map[string][]*dpLine{}
	for _, l := range t.d.lines {
		if _, ok := t.spy[l]; ok {
			linesOf[l.context] = append(linesOf[l.context], l)
		}
	}
	known := map[string]bool{}
	for _, c := range t.d.contexts {
		known[c.target] = true
	}
	for from, incs := range t.d.includes {
		for _, inc := range incs {
			if !known[inc.target] {
				t.im.Notes = append(t.im.Notes, DialplanNote{File: inc.file, Line: inc.line, Kind: NoteIgnored,
					Msg: fmt.Sprintf("context %s includes %s, which is in none of the files given: spy lines there are not read", from, inc.target)})
			}
		}
	}
	var out []*dpProfile
	names := map[string]bool{}
	seen := map[string]bool{}
	for _, c := range t.d.contexts {
		if seen[c.target] {
			continue // [ctx](+) or the same context in another file
		}
		seen[c.target] = true
		var lines []*dpLine
		visited := map[string]bool{}
		var walk func(ctx string)
		walk = func(ctx string) {
			if visited[ctx] {
				return
			}
			visited[ctx] = true
			lines = append(lines, linesOf[ctx]...)
			for _, inc := range t.d.includes[ctx] {
				walk(inc.target)
			}
		}
		walk(c.target)
		if len(lines) == 0 {
			continue
		}
		p := &dpProfile{context: c.target, name: profileName(c.target, names), at: c}
		names[p.name] = true
		for _, l := range lines {
			for _, g := range t.spy[l] {
				p.grants = append(p.grants, g)
				p.sources = append(p.sources, fmt.Sprintf("%s [%s] %s", l.where(), l.context, l.text))
			}
		}
		out = append(out, p)
	}
	return out
}

// profileName turns a context name into a profile name callwarden
// accepts and no other proposed profile has.
func profileName(context string, taken map[string]bool) string {
	var b strings.Builder
	for _, r := range context {
		if enforce.CheckID(string(r)) == nil {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > 200 {
		name = name[:200]
	}
	if enforce.CheckID(name) != nil {
		name = "context"
	}
	base := name
	for n := 2; taken[name]; n++ {
		name = fmt.Sprintf("%s-%d", base, n)
	}
	return name
}

// dpSupervisor is a user the supervisors option names who is no agent of
// the dialplan.
type dpSupervisor struct {
	id, profile, context string
}

// assignSupervisors gives each context's profile to the users named for
// it: an agent of the dialplan (by id or identity) or a new user.
func (t *translator) assignSupervisors(profiles []*dpProfile, supervisors map[string][]string) error {
	byContext := map[string]*dpProfile{}
	var contexts []string
	for _, p := range profiles {
		byContext[p.context] = p
		contexts = append(contexts, p.context)
	}
	keys := make([]string, 0, len(supervisors))
	for k := range supervisors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	given := map[string]string{} // user id -> context
	for _, ctx := range keys {
		p := byContext[ctx]
		if p == nil {
			known := "none has"
			if len(contexts) > 0 {
				known = "contexts that have: " + strings.Join(contexts, ", ")
			}
			return fmt.Errorf("supervisors of context %q: no translated ChanSpy/ExtenSpy line can be dialled from it (%s)", ctx, known)
		}
		for _, id := range supervisors[ctx] {
			if err := enforce.CheckID(id); err != nil {
				return fmt.Errorf("supervisors of context %q: %w", ctx, err)
			}
			a := t.agentByName(id)
			if a != nil {
				id = a.id
			}
			if first, dup := given[id]; dup && first != ctx {
				return fmt.Errorf("supervisor %q given to contexts %q and %q: a user holds one profile (give it the context whose phones it uses)", id, first, ctx)
			}
			given[id] = ctx
			p.users++
			if a != nil {
				a.profile = p.name
				continue
			}
			if !t.hasSupervisor(id) {
				t.supervisors = append(t.supervisors, dpSupervisor{id: id, profile: p.name, context: ctx})
			}
		}
	}
	return nil
}

// agentByName finds the agent whose id, channel stem or extension is name.
func (t *translator) agentByName(name string) *dpAgent {
	for _, a := range t.agents.list {
		if a.id == name {
			return a
		}
	}
	if a := t.agents.byStem[strings.ToLower(name)]; a != nil {
		return a
	}
	for _, a := range t.agents.list {
		for _, ref := range a.extens {
			if e, _, _ := strings.Cut(ref, "@"); e == name {
				return a
			}
		}
	}
	return nil
}

func (t *translator) hasSupervisor(id string) bool {
	for _, s := range t.supervisors {
		if s.id == id {
			return true
		}
	}
	return false
}

// isDialString reports whether an extension is one a phone dials and a
// caller id shows (digits, *, #, +), and so a useful identity.
func isDialString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || strings.IndexByte("*#+", s[i]) >= 0) {
			return false
		}
	}
	return true
}

// assemble writes the policy and the comments of the proposal, and the
// todo notes of what the administrator must fill in.
func (t *translator) assemble(profiles []*dpProfile) {
	im := t.im
	for _, p := range profiles {
		im.Policy.Profiles = append(im.Policy.Profiles, enforce.Profile{Name: p.name, Grants: p.grants})
		im.grantSources[p.name] = p.sources
		if p.users == 0 {
			im.Notes = append(im.Notes, DialplanNote{File: p.at.file, Line: p.at.line, Kind: NoteTodo,
				Msg: fmt.Sprintf("profile %s has no user: give it to the phones whose endpoint context is %s (pjsip.conf), e.g. --supervisors %s=ID,ID", p.name, p.context, p.context)})
		}
	}
	// An identity two users would share, or that is another user's id,
	// is left out: it could not tell them apart.
	ids := map[string]bool{}
	for _, a := range t.agents.list {
		ids[a.id] = true
	}
	for _, s := range t.supervisors {
		ids[s.id] = true
	}
	owners := map[string]int{}
	identities := make([][]string, len(t.agents.list))
	for i, a := range t.agents.list {
		for _, s := range a.stems {
			identities[i] = appendUnique(identities[i], s)
		}
		for _, ref := range a.extens {
			if e, _, _ := strings.Cut(ref, "@"); isDialString(e) && e != a.id {
				identities[i] = appendUnique(identities[i], e)
			}
		}
		for _, id := range identities[i] {
			owners[id]++
		}
	}
	for i, a := range t.agents.list {
		u := enforce.User{ID: a.id, Profile: a.profile, Teams: a.teams}
		for _, id := range identities[i] {
			if owners[id] > 1 || (ids[id] && id != a.id) {
				im.Notes = append(im.Notes, DialplanNote{Kind: NoteTodo,
					Msg: fmt.Sprintf("identity %q of user %s left out: another user has it too (extensions of the same number in two contexts?)", id, a.id)})
				continue
			}
			u.Identities = append(u.Identities, id)
		}
		im.Policy.Users = append(im.Policy.Users, u)
		sort.SliceStable(a.src, func(i, j int) bool { return lessWhere(im.files, a.src[i], a.src[j]) })
		im.userSources[a.id] = "an agent of the dialplan: " + strings.Join(a.src, ", ")
	}
	for _, s := range t.supervisors {
		im.Policy.Users = append(im.Policy.Users, enforce.User{ID: s.id, Profile: s.profile})
		im.userSources[s.id] = "a phone of context " + s.context + " (--supervisors)"
		msg := fmt.Sprintf("user %s has no identity: add its phone's channel name (identities: [PJSIP/...])", s.id)
		if isDialString(s.id) {
			msg += " unless its caller id number is " + s.id
		}
		im.Notes = append(im.Notes, DialplanNote{Kind: NoteTodo, Msg: msg})
	}
}

// lessWhere orders two "file:line" positions by the order the files were
// given, then by line.
func lessWhere(files []string, a, b string) bool {
	i, j := strings.LastIndexByte(a, ':'), strings.LastIndexByte(b, ':')
	if i < 0 || j < 0 {
		return a < b
	}
	if a[:i] != b[:j] {
		return fileOrder(files, a[:i]) < fileOrder(files, b[:j])
	}
	la, _ := strconv.Atoi(a[i+1:])
	lb, _ := strconv.Atoi(b[j+1:])
	return la < lb
}

// MarshalDialplanImport writes the proposal as a profiles file: a header
// naming the dialplan files, then each grant under a comment naming the
// dialplan line it comes from, and each agent under where it was met.
// ParseProfiles of the result gives im.Policy back.
func MarshalDialplanImport(im *DialplanImport) ([]byte, error) {
	doc, err := profilesDoc(im.Policy)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := root.Encode(doc); err != nil {
		return nil, fmt.Errorf("marshal dialplan import: %w", err)
	}
	root.HeadComment = "Proposed by `callwarden profiles import-dialplan` from " + printable(strings.Join(im.files, ", ")) + ".\n" +
		"Each grant names the dialplan line it translates; read the import's report\n" +
		"(what it could not translate, who must hold each profile) before applying."
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		switch key.Value {
		case "profiles":
			for _, p := range val.Content {
				commentGrants(p, im.grantSources)
			}
		case "users":
			for _, u := range val.Content {
				if id := mappingValue(u, "id"); id != nil {
					u.HeadComment = printable(im.userSources[id.Value])
				}
			}
		}
	}
	return encodeProfiles(&root, "marshal dialplan import")
}

// commentGrants puts the source of each grant of profile node p above it.
func commentGrants(p *yaml.Node, sources map[string][]string) {
	name, grants := mappingValue(p, "name"), mappingValue(p, "grants")
	if name == nil || grants == nil {
		return
	}
	src := sources[name.Value]
	for i, g := range grants.Content {
		if i < len(src) {
			g.HeadComment = printable(src[i])
		}
	}
}

// mappingValue returns the value of key in mapping node m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
