package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callwarden/callwarden/enforce"
)

// maxAliasExpansion bounds how many YAML nodes one document may expand to
// through aliases, so a small hostile file cannot make the parser walk
// billions of nodes ("billion laughs"). Only nodes reached through an
// alias count: a large file written out in full (an export of 200,000
// users) is as big as it looks and costs nothing here.
const maxAliasExpansion = 1 << 20

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
		// Only anchored nodes can be reached twice (through an alias, or
		// in a cycle); every other node has one parent and is walked
		// once, so only they are memoised: a large file without aliases
		// allocates nothing here.
		anchored := n.Anchor != ""
		if anchored {
			if c, ok := memo[n]; ok {
				if c.size == inProgress {
					return cost{size: over, viaAlias: over}
				}
				return c
			}
			memo[n] = cost{size: inProgress}
		}
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
		if anchored {
			memo[n] = c
		}
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

func index(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

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
		if key == "<<" && k.ShortTag() == "!!merge" {
			p.errAt(k, field, "merge keys (<<) are not supported; repeat the fields or use an alias for the whole value")
			continue
		}
		if first, dup := seen[key]; dup {
			p.errAt(k, join(field, key), "duplicate field (first at line %d)", first)
			continue
		}
		seen[key] = k.Line
		if !containsStr(allowed, key) {
			p.errAt(k, join(field, key), "unknown field (want one of %s)", strings.Join(allowed, ", "))
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

func containsStr(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
