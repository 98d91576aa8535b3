package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
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

var (
	topFields       = []string{"version", "profiles", "users", "protected"}
	profileFields   = []string{"name", "description", "grants", "notify_target", "mask_digits"}
	grantFields     = []string{"actions", "queues", "teams", "agents", "sites", "profiles", "valid_from", "valid_until", "hours", "recorded_within", "max_duration", "max_pause"}
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
	var actionsNode, profilesNode, untilNode, maxDurNode, maxPauseNode *yaml.Node
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
		case "max_duration":
			maxDurNode = v
			g.MaxDuration = p.limit(v, f)
		case "max_pause":
			maxPauseNode = v
			g.MaxPause = p.limit(v, f)
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
	monitors := enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge, enforce.RecordingStart)
	if maxDurNode != nil && actionsNode != nil && g.Actions&monitors == 0 {
		p.errAt(maxDurNode, join(field, "max_duration"), "only meaningful when actions include a monitor action or recording.start")
	}
	if maxPauseNode != nil && actionsNode != nil && !g.Actions.Has(enforce.RecordingPause) {
		p.errAt(maxPauseNode, join(field, "max_pause"), "only meaningful when actions include recording.pause")
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

// ParseDuration reads a duration as a profiles file writes one: a Go
// duration ("720h", "90m") or a whole number of days ("30d"). It must be
// positive. The CLI reads its periods (`--impact=7d`) with it too.
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s) }

// parseDuration is ParseDuration.
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

// limit reads a grant's max_duration or max_pause: a positive duration
// (parseDuration) of at most enforce.MaxLimit; zero on error.
func (p *parser) limit(v *yaml.Node, field string) time.Duration {
	s, ok := p.str(v, field)
	if !ok {
		return 0
	}
	d, err := parseDuration(s)
	switch {
	case err != nil:
		p.errAt(v, field, "%v", err)
		return 0
	case d > enforce.MaxLimit:
		p.errAt(v, field, "duration %q exceeds a year (at most 366d)", s)
		return 0
	}
	return d
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
