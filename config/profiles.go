package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	// The IANA database is embedded so that a grant's `tz` resolves to the
	// same rules on every daemon, whatever zoneinfo the host (or a
	// distroless image) ships.
	_ "time/tzdata"

	"gopkg.in/yaml.v3"

	"github.com/callwarden/callwarden/enforce"
)

// ProfilesVersion is the only version of the profiles file format this
// package reads and writes.
const ProfilesVersion = 1

// maxAliasExpansion bounds how many YAML nodes one document may expand to
// through aliases, so a small hostile file cannot make the parser walk
// billions of nodes ("billion laughs"). Only nodes reached through an
// alias count: a large file written out in full (an export of 200,000
// users) is as big as it looks and costs nothing here.
const maxAliasExpansion = 1 << 20

// Position locates a problem in a profiles file.
type Position struct {
	File  string
	Line  int
	Field string // YAML path such as "profiles[0].grants[1].actions[2]"
}

// String renders the position as "file:line: field", leaving out the parts
// that are unknown.
func (p Position) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(p.Field)
	}
	return b.String()
}

// FieldError is one problem in a profiles file, printed as
// "file:line: field: message".
type FieldError struct {
	Position
	Msg string
}

// Error implements error as "file:line: field: message".
func (e *FieldError) Error() string {
	if pos := e.Position.String(); pos != "" {
		return pos + ": " + e.Msg
	}
	return e.Msg
}

// Errors is every problem found in one load, sorted by file then line;
// nothing was applied.
type Errors []*FieldError

// Error prints one problem per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each FieldError to errors.As and errors.Is.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

func (e Errors) sort() {
	sort.SliceStable(e, func(i, j int) bool {
		if e[i].File != e[j].File {
			return e[i].File < e[j].File
		}
		return e[i].Line < e[j].Line
	})
}

// ParseProfiles parses one profiles document named name (used in errors).
// Unknown fields, unknown actions, unknown profile references, duplicate ids,
// bad durations, bad time zones and windows that end before they start are
// errors of type Errors; every error is reported, and a bad document yields
// no Policy at all.
//
// Beyond the format shown in DESIGN.md it accepts: `description` on
// profiles and users (ignored); `self` as the agents scope of a grant (the
// requester's own calls); `recorded_within` in days ("30d"); `days` as
// `all`, `weekdays` or `weekend` (alone or in the list) and omitted (every
// day); `to: "24:00"`; identities and ids written as bare YAML integers
// (1001 is read as "1001").
func ParseProfiles(name string, data []byte) (enforce.Policy, error) {
	doc, errs := parseDoc(name, data)
	return build([]*fileDoc{doc}, errs)
}

// LoadProfiles reads and merges the given files (profiles from one, users
// from another...). References resolve across the merged set; a profile
// name, user id or identity defined in two files is a conflict naming both
// places. Protected lists are concatenated without duplicates. A file that
// cannot be read fails the load with an error naming its path.
func LoadProfiles(paths ...string) (enforce.Policy, error) {
	if len(paths) == 0 {
		return enforce.Policy{}, errors.New("load profiles: no file given")
	}
	docs := make([]*fileDoc, 0, len(paths))
	var errs Errors
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return enforce.Policy{}, fmt.Errorf("load profiles: %w", err)
		}
		doc, derrs := parseDoc(path, data)
		docs = append(docs, doc)
		errs = append(errs, derrs...)
	}
	return build(docs, errs)
}

// ref is a reference to a profile by name, with where it was written.
type ref struct {
	name string
	pos  Position
}

type profileEntry struct {
	enforce.Profile
	namePos Position
	refs    []ref // profiles named by its profile.assign grants
}

type userEntry struct {
	enforce.User
	idPos      Position
	profileRef *ref
	identPos   []Position // parallel to Identities
}

type fileDoc struct {
	name            string
	profiles        []*profileEntry
	users           []*userEntry
	protectedUsers  []string
	protectedQueues []string
}

// parser walks one document's yaml.Node tree, collecting every error.
type parser struct {
	file string
	errs Errors
}

func (p *parser) errAt(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &FieldError{
		Position: Position{File: p.file, Line: line, Field: field},
		Msg:      fmt.Sprintf(format, args...),
	})
}

func (p *parser) pos(n *yaml.Node, field string) Position {
	return Position{File: p.file, Line: n.Line, Field: field}
}

// resolve follows aliases. The document's alias expansion was bounded by
// aliasExpansion before the walk, so following them here is safe.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// aliasExpansion counts the nodes a walk of root would reach through
// aliases: for every alias met, the whole expanded subtree it stands for,
// recursively. Counts saturate just above limit, and a subtree is sized
// once (memoised), so a billion laughs is measured in time proportional to
// the file, not to its expansion. An alias cycle (`&a [*a]`) expands
// without end and counts as over the limit. The second result is the node
// where the limit was passed, for the error's line.
func aliasExpansion(root *yaml.Node, limit int) (int, *yaml.Node) {
	type cost struct{ size, viaAlias int }
	const inProgress = -1
	memo := make(map[*yaml.Node]cost)
	over := limit + 1
	add := func(a, b int) int { return min(a+b, over) }
	var at *yaml.Node
	var walk func(n *yaml.Node) cost
	walk = func(n *yaml.Node) cost {
		if n == nil {
			return cost{}
		}
		if c, ok := memo[n]; ok {
			if c.size == inProgress {
				return cost{size: over, viaAlias: over}
			}
			return c
		}
		memo[n] = cost{size: inProgress}
		var c cost
		if n.Kind == yaml.AliasNode {
			t := walk(n.Alias)
			c = cost{size: t.size, viaAlias: add(t.size, t.viaAlias)}
		} else {
			c.size = 1
			for _, ch := range n.Content {
				cc := walk(ch)
				c.size, c.viaAlias = add(c.size, cc.size), add(c.viaAlias, cc.viaAlias)
			}
		}
		if c.viaAlias >= over && at == nil {
			at = n
		}
		memo[n] = c
		return c
	}
	return walk(root).viaAlias, at
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// mapping calls fn for each key of n in order, after rejecting non-mappings,
// merge keys, duplicate keys and keys not in allowed. It reports whether n
// was a mapping.
func (p *parser) mapping(n *yaml.Node, field string, allowed []string, fn func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		p.errAt(n, field, "expected a mapping (%s), got %s", strings.Join(allowed, ", "), describe(n))
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.resolve(n.Content[i]), p.resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errAt(k, field, "expected a field name, got %s", describe(k))
			continue
		}
		key := k.Value
		kf := join(field, key)
		if key == "<<" && k.ShortTag() == "!!merge" {
			p.errAt(k, field, "merge keys (<<) are not supported; repeat the fields or use an alias for the whole value")
			continue
		}
		if first, dup := seen[key]; dup {
			p.errAt(k, kf, "duplicate field (first at line %d)", first)
			continue
		}
		seen[key] = k.Line
		if !containsStr(allowed, key) {
			p.errAt(k, kf, "unknown field (want one of %s)", strings.Join(allowed, ", "))
			continue
		}
		fn(key, k, v)
	}
	return true
}

// seq calls fn for each item of the list n. A null n is an empty list.
func (p *parser) seq(n *yaml.Node, field string, fn func(i int, item *yaml.Node, f string)) bool {
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		p.errAt(n, field, "expected a list, got %s", describe(n))
		return false
	}
	for i, item := range n.Content {
		fn(i, p.resolve(item), index(field, i))
	}
	return true
}

// str reads a scalar string. Bare integers are accepted as their text
// (identity 1001 is "1001"); other scalars (booleans, floats, dates, null)
// must be quoted, since YAML would otherwise change them.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errAt(n, field, "expected a string, got %s", describe(n))
		return "", false
	}
	switch n.ShortTag() {
	case "!!str", "!!int":
	case "!!null":
		p.errAt(n, field, "must not be empty")
		return "", false
	default:
		p.errAt(n, field, "expected a string, got %s %q; quote it", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
		return "", false
	}
	if n.Value == "" {
		p.errAt(n, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

// id reads a scalar that names something (a user, a profile, a queue, a
// team, an agent, a site, an identity): a string that follows the id
// grammar every entry point shares (enforce.CheckID), so that what a file
// can define the check API can ask about, and no name can forge a log line.
func (p *parser) id(n *yaml.Node, field string) (string, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	if err := enforce.CheckID(s); err != nil {
		p.errAt(n, field, "%v", err)
		return "", false
	}
	return s, true
}

// strList reads a list of ids; required makes an empty list an error.
func (p *parser) strList(n *yaml.Node, field string, required bool) []string {
	var out []string
	ok := p.seq(n, field, func(_ int, item *yaml.Node, f string) {
		if s, ok := p.id(item, f); ok {
			out = append(out, s)
		}
	})
	if ok && required && (isNull(n) || len(n.Content) == 0) {
		p.errAt(n, field, "must not be empty")
	}
	return out
}

func (p *parser) timestamp(n *yaml.Node, field string) time.Time {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
		p.errAt(n, field, "expected an RFC3339 time such as 2026-11-01T00:00:00Z, got %s", describe(n))
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, n.Value)
	if err != nil {
		p.errAt(n, field, "invalid time %q (want RFC3339 such as 2026-11-01T00:00:00Z)", n.Value)
		return time.Time{}
	}
	return t.UTC()
}

func (p *parser) intValue(n *yaml.Node, field string) (int, bool) {
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.errAt(n, field, "expected an integer, got %s", describe(n))
		return 0, false
	}
	return v, true
}

func (p *parser) boolValue(n *yaml.Node, field string) bool {
	var v bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		p.errAt(n, field, "expected true or false, got %s", describe(n))
		return false
	}
	return v
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	p.errs = append(p.errs, &FieldError{Position: Position{File: p.file, Line: line}, Msg: "invalid YAML: " + msg})
}

var (
	topFields       = []string{"version", "profiles", "users", "protected"}
	profileFields   = []string{"name", "description", "grants", "notify_target", "mask_digits"}
	grantFields     = []string{"actions", "queues", "teams", "agents", "sites", "profiles", "valid_from", "valid_until", "hours", "recorded_within"}
	hoursFields     = []string{"days", "from", "to", "tz"}
	userFields      = []string{"id", "description", "profile", "queues", "teams", "agents", "sites", "identities", "valid_from", "valid_until"}
	protectedFields = []string{"users", "queues"}
)

// parseDoc parses one file into a fileDoc; references to profiles are
// resolved later, across every file of a load.
func parseDoc(name string, data []byte) (*fileDoc, Errors) {
	p := &parser{file: name}
	doc := &fileDoc{name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			p.errs = append(p.errs, &FieldError{Position: Position{File: name, Line: 1, Field: "version"}, Msg: "required (the file is empty; start it with `version: 1`)"})
		} else {
			p.syntaxError(err)
		}
		return doc, p.errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errAt(&extra, "", "only one YAML document per file is allowed")
	} else if !errors.Is(err, io.EOF) {
		p.syntaxError(err)
	}
	if n, at := aliasExpansion(&root, maxAliasExpansion); n > maxAliasExpansion {
		p.errAt(at, "", "document expands to more than %d nodes through aliases", maxAliasExpansion)
		return doc, p.errs
	}
	top := &root
	if top.Kind == yaml.DocumentNode && len(top.Content) > 0 {
		top = top.Content[0]
	}
	top = p.resolve(top)
	versionSeen := false
	ok := p.mapping(top, "", topFields, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			versionSeen = true
			if n, ok := p.intValue(v, "version"); ok && n != ProfilesVersion {
				p.errAt(v, "version", "unsupported version %d (want %d)", n, ProfilesVersion)
			}
		case "profiles":
			p.seq(v, "profiles", func(_ int, item *yaml.Node, f string) {
				doc.profiles = append(doc.profiles, p.profile(item, f))
			})
		case "users":
			p.seq(v, "users", func(_ int, item *yaml.Node, f string) {
				doc.users = append(doc.users, p.user(item, f))
			})
		case "protected":
			if isNull(v) {
				return
			}
			p.mapping(v, "protected", protectedFields, func(key string, _, v *yaml.Node) {
				list := p.strList(v, join("protected", key), false)
				if key == "users" {
					doc.protectedUsers = append(doc.protectedUsers, list...)
				} else {
					doc.protectedQueues = append(doc.protectedQueues, list...)
				}
			})
		}
	})
	if ok && !versionSeen {
		p.errAt(top, "version", "required (want `version: %d`)", ProfilesVersion)
	}
	return doc, p.errs
}

func (p *parser) profile(n *yaml.Node, field string) *profileEntry {
	pe := &profileEntry{}
	var named bool
	p.mapping(n, field, profileFields, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "name":
			named = true
			if s, ok := p.id(v, f); ok {
				pe.Name = s
				pe.namePos = p.pos(v, f)
			}
		case "description":
			if v.Kind != yaml.ScalarNode {
				p.errAt(v, f, "expected text, got %s", describe(v))
			}
		case "grants":
			p.seq(v, f, func(_ int, item *yaml.Node, gf string) {
				pe.Grants = append(pe.Grants, p.grant(item, gf, pe))
			})
		case "notify_target":
			pe.NotifyTarget = p.boolValue(v, f)
		case "mask_digits":
			if d, ok := p.intValue(v, f); ok {
				if d < 0 {
					p.errAt(v, f, "must not be negative, got %d", d)
				} else {
					pe.MaskDigits = d
				}
			}
		}
	})
	if n.Kind == yaml.MappingNode && !named {
		p.errAt(n, join(field, "name"), "required")
	}
	return pe
}

func (p *parser) grant(n *yaml.Node, field string, pe *profileEntry) enforce.Grant {
	var g enforce.Grant
	var actionsNode, profilesNode, untilNode *yaml.Node
	p.mapping(n, field, grantFields, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "actions":
			actionsNode = v
			var list []enforce.Action
			ok := p.seq(v, f, func(_ int, item *yaml.Node, af string) {
				s, ok := p.str(item, af)
				if !ok {
					return
				}
				a, err := enforce.ParseAction(s)
				if err != nil {
					p.errAt(item, af, "%v", err)
					return
				}
				list = append(list, a)
			})
			if ok && (isNull(v) || len(v.Content) == 0) {
				p.errAt(v, f, "must list at least one action")
			}
			g.Actions = enforce.NewActionSet(list...)
		case "queues", "teams", "agents", "sites":
			d := dimension(key)
			g.Scopes[d] = p.scope(v, f, d)
		case "profiles":
			profilesNode = k
			ok := p.seq(v, f, func(_ int, item *yaml.Node, pf string) {
				if s, ok := p.id(item, pf); ok {
					g.Profiles = append(g.Profiles, s)
					pe.refs = append(pe.refs, ref{name: s, pos: p.pos(item, pf)})
				}
			})
			if ok && (isNull(v) || len(v.Content) == 0) {
				p.errAt(v, f, "must list at least one profile")
			}
		case "valid_from":
			g.ValidFrom = p.timestamp(v, f)
		case "valid_until":
			untilNode = v
			g.ValidUntil = p.timestamp(v, f)
		case "hours":
			g.Hours = p.hours(v, f)
		case "recorded_within":
			if s, ok := p.str(v, f); ok {
				d, err := parseDuration(s)
				if err != nil {
					p.errAt(v, f, "%v", err)
				}
				g.RecordedWithin = d
			}
		}
	})
	if n.Kind != yaml.MappingNode {
		return g
	}
	if actionsNode == nil {
		p.errAt(n, join(field, "actions"), "required: a grant must list at least one action")
	}
	if profilesNode != nil && !g.Actions.Has(enforce.ProfileAssign) && actionsNode != nil {
		p.errAt(profilesNode, join(field, "profiles"), "only meaningful when actions include profile.assign")
	}
	if profilesNode == nil && g.Actions.Has(enforce.ProfileAssign) {
		p.errAt(actionsNode, join(field, "actions"), "profile.assign needs `profiles:` listing the profiles it may hand out")
	}
	if !g.ValidFrom.IsZero() && !g.ValidUntil.IsZero() && !g.ValidUntil.After(g.ValidFrom) {
		p.errAt(untilNode, join(field, "valid_until"), "must be after valid_from (%s)", g.ValidFrom.Format(time.RFC3339))
	}
	return g
}

func dimension(key string) enforce.Dimension {
	switch key {
	case "queues":
		return enforce.DimQueues
	case "teams":
		return enforce.DimTeams
	case "agents":
		return enforce.DimAgents
	}
	return enforce.DimSites
}

// scope reads a grant's scope: an explicit list, `all`, `assigned`, or
// (agents only) `self`. The keywords are refused inside a list, where they
// would silently name a resource called "all".
func (p *parser) scope(n *yaml.Node, field string, d enforce.Dimension) enforce.Scope {
	want := "a list, all or assigned"
	if d == enforce.DimAgents {
		want = "a list, all, assigned or self"
	}
	switch {
	case n.Kind == yaml.SequenceNode:
		var vals []string
		for i, item := range n.Content {
			item = p.resolve(item)
			f := index(field, i)
			s, ok := p.id(item, f)
			if !ok {
				continue
			}
			switch s {
			case "all", "assigned", "self":
				p.errAt(item, f, "%q is a keyword: write `%s: %s` instead of a list", s, d, s)
				continue
			}
			vals = append(vals, s)
		}
		if len(n.Content) == 0 {
			p.errAt(n, field, "empty list: omit the field, or write all or assigned")
			return enforce.Scope{Kind: enforce.ScopeList}
		}
		if len(vals) == 0 {
			return enforce.Scope{}
		}
		return enforce.Scope{Kind: enforce.ScopeList, Values: vals}
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		switch n.Value {
		case "all":
			return enforce.Scope{Kind: enforce.ScopeAll}
		case "assigned":
			return enforce.Scope{Kind: enforce.ScopeAssigned}
		case "self":
			if d == enforce.DimAgents {
				return enforce.Scope{Kind: enforce.ScopeSelf}
			}
			p.errAt(n, field, "self is only valid for agents")
			return enforce.Scope{}
		}
	}
	p.errAt(n, field, "expected %s, got %s", want, describe(n))
	return enforce.Scope{}
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// addDays sets the days named by s; it reports false for an unknown name.
func addDays(days *[7]bool, s string) bool {
	switch strings.ToLower(s) {
	case "all":
		for i := range days {
			days[i] = true
		}
	case "weekdays":
		for d := time.Monday; d <= time.Friday; d++ {
			days[d] = true
		}
	case "weekend":
		days[time.Saturday], days[time.Sunday] = true, true
	default:
		d, ok := dayNames[strings.ToLower(s)]
		if !ok {
			return false
		}
		days[d] = true
	}
	return true
}

const daysWanted = "mon, tue, wed, thu, fri, sat, sun, weekdays, weekend or all"

func (p *parser) hours(n *yaml.Node, field string) *enforce.Weekly {
	w := &enforce.Weekly{Location: time.UTC}
	var fromNode, toNode, daysNode *yaml.Node
	clockBad := false
	ok := p.mapping(n, field, hoursFields, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "days":
			daysNode = v
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				if !addDays(&w.Days, v.Value) {
					p.errAt(v, f, "unknown day %q (want %s)", v.Value, daysWanted)
				}
				return
			}
			p.seq(v, f, func(_ int, item *yaml.Node, df string) {
				s, ok := p.str(item, df)
				if ok && !addDays(&w.Days, s) {
					p.errAt(item, df, "unknown day %q (want %s)", s, daysWanted)
				}
			})
			if isNull(v) || (v.Kind == yaml.SequenceNode && len(v.Content) == 0) {
				p.errAt(v, f, "must name at least one day (or omit it for every day)")
			}
		case "from", "to":
			if key == "from" {
				fromNode = v
			} else {
				toNode = v
			}
			s, ok := p.str(v, f)
			if !ok {
				clockBad = true
				return
			}
			m, err := parseClock(s, key == "to")
			if err != nil {
				p.errAt(v, f, "%v", err)
				clockBad = true
				return
			}
			if key == "from" {
				w.From = m
			} else {
				w.To = m
			}
		case "tz":
			s, ok := p.str(v, f)
			if !ok {
				return
			}
			if s == "Local" {
				p.errAt(v, f, "Local depends on the host; name an IANA zone such as Europe/Paris")
				return
			}
			loc, err := time.LoadLocation(s)
			if err != nil {
				p.errAt(v, f, "unknown time zone %q (want an IANA name such as Europe/Paris)", s)
				return
			}
			w.Location = loc
		}
	})
	if !ok {
		return nil
	}
	if daysNode == nil {
		addDays(&w.Days, "all")
	}
	if fromNode == nil {
		p.errAt(n, join(field, "from"), "required (HH:MM)")
	}
	if toNode == nil {
		p.errAt(n, join(field, "to"), "required (HH:MM)")
	}
	if fromNode != nil && toNode != nil && !clockBad && w.From == w.To {
		p.errAt(toNode, join(field, "to"), "must differ from `from` (an overnight window such as 22:00-06:00 is allowed)")
	}
	return w
}

var clockRE = regexp.MustCompile(`^([0-9]{1,2}):([0-9]{2})$`)

// parseClock reads "HH:MM" as minutes after midnight; "24:00" is accepted
// as an end of day when allow24 is set.
func parseClock(s string, allow24 bool) (int, error) {
	m := clockRE.FindStringSubmatch(s)
	if m != nil {
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		if h < 24 && mi < 60 {
			return h*60 + mi, nil
		}
		if allow24 && h == 24 && mi == 0 {
			return 24 * 60, nil
		}
	}
	return 0, fmt.Errorf("invalid time of day %q (want HH:MM, 00:00 to 23:59)", s)
}

// parseDuration reads a Go duration ("720h", "90m") or a whole number of
// days ("30d"). It must be positive.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days <= 0 || days > int64(1<<63-1)/int64(24*time.Hour) {
			return 0, fmt.Errorf("invalid duration %q (want a Go duration such as 720h, or days such as 30d)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want a Go duration such as 720h, or days such as 30d)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	return d, nil
}

func (p *parser) user(n *yaml.Node, field string) *userEntry {
	ue := &userEntry{}
	var hasID bool
	var untilNode *yaml.Node
	p.mapping(n, field, userFields, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "id":
			hasID = true
			if s, ok := p.id(v, f); ok {
				ue.ID, ue.idPos = s, p.pos(v, f)
			}
		case "description":
			if v.Kind != yaml.ScalarNode {
				p.errAt(v, f, "expected text, got %s", describe(v))
			}
		case "profile":
			if s, ok := p.id(v, f); ok {
				ue.Profile = s
				ue.profileRef = &ref{name: s, pos: p.pos(v, f)}
			}
		case "queues":
			ue.Queues = p.strList(v, f, false)
		case "teams":
			ue.Teams = p.strList(v, f, false)
		case "agents":
			ue.Agents = p.strList(v, f, false)
		case "sites":
			ue.Sites = p.strList(v, f, false)
		case "identities":
			p.seq(v, f, func(_ int, item *yaml.Node, idf string) {
				if s, ok := p.id(item, idf); ok {
					ue.Identities = append(ue.Identities, s)
					ue.identPos = append(ue.identPos, p.pos(item, idf))
				}
			})
		case "valid_from":
			ue.ValidFrom = p.timestamp(v, f)
		case "valid_until":
			untilNode = v
			ue.ValidUntil = p.timestamp(v, f)
		}
	})
	if n.Kind != yaml.MappingNode {
		return ue
	}
	if !hasID {
		p.errAt(n, join(field, "id"), "required")
	}
	if !ue.ValidFrom.IsZero() && !ue.ValidUntil.IsZero() && !ue.ValidUntil.After(ue.ValidFrom) {
		p.errAt(untilNode, join(field, "valid_until"), "must be after valid_from (%s)", ue.ValidFrom.Format(time.RFC3339))
	}
	return ue
}

// where renders pos relative to the file of an error: "line 3" in the same
// file, "users.yaml:3" in another.
func where(pos Position, fromFile string) string {
	if pos.File == fromFile {
		return fmt.Sprintf("line %d", pos.Line)
	}
	return fmt.Sprintf("%s:%d", pos.File, pos.Line)
}

// build checks what spans entries and files (duplicates, references),
// then assembles the Policy and has enforce compile it as a last check.
func build(docs []*fileDoc, errs Errors) (enforce.Policy, error) {
	add := func(pos Position, format string, args ...any) {
		errs = append(errs, &FieldError{Position: pos, Msg: fmt.Sprintf(format, args...)})
	}
	var pol enforce.Policy
	profiles := make(map[string]Position)
	for _, d := range docs {
		for _, pe := range d.profiles {
			if pe.Name == "" {
				continue
			}
			if first, dup := profiles[pe.Name]; dup {
				add(pe.namePos, "profile %q already defined at %s", pe.Name, where(first, pe.namePos.File))
				continue
			}
			profiles[pe.Name] = pe.namePos
			pol.Profiles = append(pol.Profiles, pe.Profile)
		}
	}
	unknown := func(r ref) {
		names := make([]string, 0, len(profiles))
		for n := range profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		known := "none is defined"
		if len(names) > 0 {
			known = "defined: " + strings.Join(names, ", ")
		}
		add(r.pos, "unknown profile %q (%s)", r.name, known)
	}
	users := make(map[string]Position)
	identities := make(map[string]struct {
		user string
		pos  Position
	})
	for _, d := range docs {
		for _, pe := range d.profiles {
			for _, r := range pe.refs {
				if _, ok := profiles[r.name]; !ok {
					unknown(r)
				}
			}
		}
		for _, ue := range d.users {
			if ue.ID == "" {
				continue
			}
			if first, dup := users[ue.ID]; dup {
				add(ue.idPos, "user %q already defined at %s", ue.ID, where(first, ue.idPos.File))
				continue
			}
			users[ue.ID] = ue.idPos
			if r := ue.profileRef; r != nil {
				if _, ok := profiles[r.name]; !ok {
					unknown(*r)
				}
			}
			for i, id := range ue.Identities {
				pos := ue.identPos[i]
				if first, dup := identities[id]; dup {
					if first.user == ue.ID {
						add(pos, "identity %q listed twice (first at %s)", id, where(first.pos, pos.File))
					} else {
						add(pos, "identity %q already belongs to user %q at %s", id, first.user, where(first.pos, pos.File))
					}
					continue
				}
				identities[id] = struct {
					user string
					pos  Position
				}{ue.ID, pos}
			}
			pol.Users = append(pol.Users, ue.User)
		}
		pol.Protected.Users = appendUnique(pol.Protected.Users, d.protectedUsers...)
		pol.Protected.Queues = appendUnique(pol.Protected.Queues, d.protectedQueues...)
	}
	if len(errs) > 0 {
		errs.sort()
		return enforce.Policy{}, errs
	}
	if _, err := enforce.NewSnapshot(pol, 0); err != nil {
		// Every rule of NewSnapshot is checked above with a position; this
		// is a safety net for a rule added to enforce later.
		file := ""
		if len(docs) > 0 {
			file = docs[0].name
		}
		var list []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		} else {
			list = []error{err}
		}
		for _, e := range list {
			errs = append(errs, &FieldError{Position: Position{File: file, Line: 1}, Msg: e.Error()})
		}
		return enforce.Policy{}, errs
	}
	return pol, nil
}

func appendUnique(list []string, vals ...string) []string {
	for _, v := range vals {
		if !containsStr(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func containsStr(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// The out* types give MarshalProfiles the field order and spelling of the
// profiles file format.
type outDoc struct {
	Version   int           `yaml:"version"`
	Profiles  []outProfile  `yaml:"profiles,omitempty"`
	Users     []outUser     `yaml:"users,omitempty"`
	Protected *outProtected `yaml:"protected,omitempty"`
}

type outProfile struct {
	Name         string     `yaml:"name"`
	Grants       []outGrant `yaml:"grants,omitempty"`
	NotifyTarget bool       `yaml:"notify_target,omitempty"`
	MaskDigits   int        `yaml:"mask_digits,omitempty"`
}

type outGrant struct {
	Actions        []string   `yaml:"actions,flow"`
	Queues         *yaml.Node `yaml:"queues,omitempty"`
	Teams          *yaml.Node `yaml:"teams,omitempty"`
	Agents         *yaml.Node `yaml:"agents,omitempty"`
	Sites          *yaml.Node `yaml:"sites,omitempty"`
	Profiles       []string   `yaml:"profiles,omitempty,flow"`
	ValidFrom      string     `yaml:"valid_from,omitempty"`
	ValidUntil     string     `yaml:"valid_until,omitempty"`
	Hours          *outHours  `yaml:"hours,omitempty,flow"`
	RecordedWithin string     `yaml:"recorded_within,omitempty"`
}

type outHours struct {
	Days []string `yaml:"days,flow"`
	From string   `yaml:"from"`
	To   string   `yaml:"to"`
	TZ   string   `yaml:"tz"`
}

type outUser struct {
	ID         string   `yaml:"id"`
	Profile    string   `yaml:"profile,omitempty"`
	Queues     []string `yaml:"queues,omitempty,flow"`
	Teams      []string `yaml:"teams,omitempty,flow"`
	Agents     []string `yaml:"agents,omitempty,flow"`
	Sites      []string `yaml:"sites,omitempty,flow"`
	Identities []string `yaml:"identities,omitempty,flow"`
	ValidFrom  string   `yaml:"valid_from,omitempty"`
	ValidUntil string   `yaml:"valid_until,omitempty"`
}

type outProtected struct {
	Users  []string `yaml:"users,omitempty,flow"`
	Queues []string `yaml:"queues,omitempty,flow"`
}

// MarshalProfiles renders a policy back into the profiles file format
// (used by `profiles export`). ParseProfiles of the result gives p back;
// descriptions, comments and aliases of the original file are not kept.
func MarshalProfiles(p enforce.Policy) ([]byte, error) {
	doc := outDoc{Version: ProfilesVersion}
	for _, pr := range p.Profiles {
		op := outProfile{Name: pr.Name, NotifyTarget: pr.NotifyTarget, MaskDigits: pr.MaskDigits}
		for gi, g := range pr.Grants {
			og, err := outGrantOf(g)
			if err != nil {
				return nil, fmt.Errorf("marshal profiles: profile %q grant %d: %w", pr.Name, gi, err)
			}
			op.Grants = append(op.Grants, og)
		}
		doc.Profiles = append(doc.Profiles, op)
	}
	for _, u := range p.Users {
		doc.Users = append(doc.Users, outUser{
			ID: u.ID, Profile: u.Profile,
			Queues: u.Queues, Teams: u.Teams, Agents: u.Agents, Sites: u.Sites,
			Identities: u.Identities,
			ValidFrom:  formatTime(u.ValidFrom), ValidUntil: formatTime(u.ValidUntil),
		})
	}
	if len(p.Protected.Users) > 0 || len(p.Protected.Queues) > 0 {
		doc.Protected = &outProtected{Users: p.Protected.Users, Queues: p.Protected.Queues}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("marshal profiles: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal profiles: %w", err)
	}
	return buf.Bytes(), nil
}

func outGrantOf(g enforce.Grant) (outGrant, error) {
	og := outGrant{Profiles: g.Profiles, ValidFrom: formatTime(g.ValidFrom), ValidUntil: formatTime(g.ValidUntil)}
	for _, a := range g.Actions.List() {
		og.Actions = append(og.Actions, a.String())
	}
	dims := [...]**yaml.Node{enforce.DimQueues: &og.Queues, enforce.DimTeams: &og.Teams, enforce.DimAgents: &og.Agents, enforce.DimSites: &og.Sites}
	for d, sc := range g.Scopes {
		switch sc.Kind {
		case enforce.ScopeUnset:
		case enforce.ScopeList:
			n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, v := range sc.Values {
				item := &yaml.Node{}
				if err := item.Encode(v); err != nil {
					return og, fmt.Errorf("%s: %w", enforce.Dimension(d), err)
				}
				n.Content = append(n.Content, item)
			}
			*dims[d] = n
		case enforce.ScopeAll:
			*dims[d] = keywordNode("all")
		case enforce.ScopeAssigned:
			*dims[d] = keywordNode("assigned")
		case enforce.ScopeSelf:
			*dims[d] = keywordNode("self")
		default:
			return og, fmt.Errorf("%s: unknown scope kind %d", enforce.Dimension(d), sc.Kind)
		}
	}
	if h := g.Hours; h != nil {
		oh := &outHours{From: formatClock(h.From), To: formatClock(h.To), TZ: "UTC"}
		if h.Location != nil {
			oh.TZ = h.Location.String()
		}
		for i := 1; i <= 7; i++ {
			d := time.Weekday(i % 7) // Monday first
			if h.Days[d] {
				oh.Days = append(oh.Days, strings.ToLower(d.String()[:3]))
			}
		}
		og.Hours = oh
	}
	if g.RecordedWithin > 0 {
		og.RecordedWithin = formatDuration(g.RecordedWithin)
	}
	return og, nil
}

func keywordNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// formatDuration writes whole days as "30d", anything else as a Go
// duration.
func formatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
