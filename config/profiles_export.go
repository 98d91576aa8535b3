package config

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callwarden/callwarden/enforce"
)

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
	MaxDuration    string     `yaml:"max_duration,omitempty"`
	MaxPause       string     `yaml:"max_pause,omitempty"`
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
	doc, err := profilesDoc(p)
	if err != nil {
		return nil, err
	}
	return encodeProfiles(doc, "marshal profiles")
}

// encodeProfiles writes v (an outDoc or its yaml.Node) as YAML indented
// by two, as profiles files are; errors start with what.
func encodeProfiles(v any, what string) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return buf.Bytes(), nil
}

// profilesDoc is p in the shape of the profiles file format.
func profilesDoc(p enforce.Policy) (outDoc, error) {
	doc := outDoc{Version: ProfilesVersion}
	for _, pr := range p.Profiles {
		op := outProfile{Name: pr.Name, NotifyTarget: pr.NotifyTarget, MaskDigits: pr.MaskDigits}
		for gi, g := range pr.Grants {
			og, err := outGrantOf(g)
			if err != nil {
				return doc, fmt.Errorf("marshal profiles: profile %q grant %d: %w", pr.Name, gi, err)
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
	return doc, nil
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
	if g.MaxDuration > 0 {
		og.MaxDuration = formatDuration(g.MaxDuration)
	}
	if g.MaxPause > 0 {
		og.MaxPause = formatDuration(g.MaxPause)
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
