package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/callwarden/callwarden/enforce"
)

// NoteKind says how ImportDialplan dealt with a line of the dialplan.
type NoteKind uint8

// The kinds of note, from the most to the least serious.
const (
	// NoteNotTranslated: the line grants something the proposal does not.
	NoteNotTranslated NoteKind = iota + 1
	// NotePartly: the line is translated, but part of what it grants is not.
	NotePartly
	// NoteReview: the line is translated, but the proposal may grant more
	// than the dialplan did (conditions it cannot read).
	NoteReview
	// NoteTodo: what the administrator must add before applying.
	NoteTodo
	// NoteIgnored: options and lines that decide no right.
	NoteIgnored
)

var noteKindNames = [...]string{
	NoteNotTranslated: "not translated",
	NotePartly:        "partly translated",
	NoteReview:        "review",
	NoteTodo:          "todo",
	NoteIgnored:       "ignored",
}

// String returns the kind as the report writes it.
func (k NoteKind) String() string {
	if k > 0 && int(k) < len(noteKindNames) {
		return noteKindNames[k]
	}
	return "note(" + strconv.Itoa(int(k)) + ")"
}

// DialplanNote is one line of the import report.
type DialplanNote struct {
	File string
	Line int // 0: the note is about the whole import
	Kind NoteKind
	Msg  string
}

// String renders the note as "file:line: kind: message", on one line:
// control characters and invalid UTF-8 from the dialplan are escaped, so
// that a hostile file cannot forge report lines or drive a terminal.
func (n DialplanNote) String() string {
	if n.File == "" {
		return n.Kind.String() + ": " + printable(n.Msg)
	}
	return printable(n.File) + ":" + strconv.Itoa(n.Line) + ": " + n.Kind.String() + ": " + printable(n.Msg)
}

// printable escapes what is not printable in s (control and format
// characters, invalid UTF-8) as Go escapes, and keeps the rest as is.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// DialplanFile is one dialplan file given to ImportDialplan.
type DialplanFile struct {
	Name string // used in notes and comments
	Data []byte
}

// DialplanImport is the profiles ImportDialplan proposes and its report.
type DialplanImport struct {
	// Policy is the proposal; MarshalDialplanImport writes it with the
	// dialplan line of every grant as a comment.
	Policy enforce.Policy
	// Notes is the report, sorted by file and line.
	Notes []DialplanNote
	// SpyLines counts the ChanSpy and ExtenSpy lines read.
	SpyLines int
	// Translated counts the spy lines that gave at least one grant.
	Translated int

	files        []string
	grantSources map[string][]string // per profile, one comment per grant
	userSources  map[string]string
}

// ImportDialplan reads Asterisk dialplans (extensions.conf) and proposes
// profiles granting what their ChanSpy and ExtenSpy lines grant:
//
//   - every context that holds a spy line, or includes one that does,
//     becomes a profile named after it, for the phones dialling from it;
//     supervisors maps a context to the user ids of those phones (they
//     cannot be read from the dialplan: pjsip.conf places them);
//   - a line grants monitor.listen, plus monitor.whisper with `w` and
//     monitor.barge with `B`; `d` (switch modes with 4, 5, 6) grants all
//     three;
//   - its targets become a grant's scope: `g(grp)` the teams grp (and the
//     queues a channel carrying that SPYGROUP enters), `e(list)`, the
//     channel prefix and ExtenSpy's extension the agents they reach;
//   - the agents are the endpoints its extensions Dial, named after them,
//     with the teams of the SPYGROUP those extensions set.
//
// What it cannot express without granting more than the dialplan did
// (`W`, `o`, variables, prefixes reaching no known agent...) is left out
// and named in Notes, with file and line. Unreadable dialplan lines are
// notes too: the only errors are about supervisors (an unknown context,
// a bad id, a user given two contexts).
func ImportDialplan(files []DialplanFile, supervisors map[string][]string) (*DialplanImport, error) {
	var d dialplan
	im := &DialplanImport{grantSources: map[string][]string{}, userSources: map[string]string{}}
	for _, f := range files {
		d.read(f.Name, f.Data)
		im.files = append(im.files, f.Name)
	}
	t := &translator{d: &d, im: im, agents: newAgentSet(), groupQueues: map[string][]string{}}
	im.Notes = append(im.Notes, d.notes...)
	im.SpyLines = d.unplaced
	t.scanExtensions()
	t.findAgents()
	t.translateSpyLines()
	profiles := t.buildProfiles()
	if err := t.assignSupervisors(profiles, supervisors); err != nil {
		return nil, err
	}
	t.assemble(profiles)
	sort.SliceStable(im.Notes, func(i, j int) bool {
		a, b := im.Notes[i], im.Notes[j]
		if a.File != b.File {
			return fileOrder(im.files, a.File) < fileOrder(im.files, b.File)
		}
		return a.Line < b.Line
	})
	if err := enforce.ValidatePolicy(im.Policy); err != nil {
		// Every id is checked as it is made; this names a bug, not input.
		return nil, fmt.Errorf("import dialplan: the proposal does not validate: %w", err)
	}
	return im, nil
}

// fileOrder ranks notes of the files given first; notes without a file
// come last.
func fileOrder(files []string, f string) int {
	for i, x := range files {
		if x == f {
			return i
		}
	}
	return len(files)
}

// dpExten is one extension of one context: its priorities in order.
type dpExten struct {
	context, exten string
	lines          []*dpLine
}

// dpAgent is a target the dialplan names: an endpoint it dials, or one an
// e() list names.
type dpAgent struct {
	id      string
	stems   []string // channel names without their "-0000002a": PJSIP/1001
	extens  []string // literal extensions dialling it, "1001@internal"
	teams   []string
	src     []string // where it was met
	profile string
}

type agentSet struct {
	list   []*dpAgent
	byStem map[string]*dpAgent // lower-cased: Asterisk compares names without case
	ids    map[string]bool
}

func newAgentSet() *agentSet {
	return &agentSet{byStem: map[string]*dpAgent{}, ids: map[string]bool{}}
}

// add returns the agent of the channel stem, making it when new; its id
// is the endpoint's name (PJSIP/1001 -> 1001) unless another agent has it.
func (s *agentSet) add(stem, where string) *dpAgent {
	key := strings.ToLower(stem)
	if a, ok := s.byStem[key]; ok {
		return a
	}
	_, res, _ := strings.Cut(stem, "/")
	id := res
	for n := 2; s.ids[id]; n++ {
		id = strings.ToLower(strings.ReplaceAll(stem, "/", "-"))
		if n > 2 {
			id += "-" + strconv.Itoa(n)
		}
	}
	a := &dpAgent{id: id, stems: []string{stem}, src: []string{where}}
	s.ids[id] = true
	s.byStem[key] = a
	s.list = append(s.list, a)
	return a
}

// validStem reports whether s is a channel name stem the importer can
// tie to one phone: TECH/name, with no variable, dial string or second
// slash (Local/1001@ctx, PJSIP/1001@trunk and DAHDI/g1/555 are not).
func validStem(s string) bool {
	tech, res, ok := strings.Cut(s, "/")
	if !ok || tech == "" || res == "" || strings.EqualFold(tech, "Local") {
		return false
	}
	for _, part := range []string{tech, res} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.+-", c) >= 0) {
				return false
			}
		}
	}
	return enforce.CheckID(s) == nil
}

// translator holds one import while it is worked out.
type translator struct {
	d           *dialplan
	im          *DialplanImport
	extens      []*dpExten
	agents      *agentSet
	groupQueues map[string][]string // SPYGROUP -> queues its channels enter
	spy         map[*dpLine][]enforce.Grant
	supervisors []dpSupervisor
}

func (t *translator) note(l *dpLine, kind NoteKind, format string, args ...any) {
	t.im.Notes = append(t.im.Notes, DialplanNote{File: l.file, Line: l.line, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

// scanExtensions groups the priorities by context and extension, in the
// order the extensions are first met.
func (t *translator) scanExtensions() {
	byKey := map[string]*dpExten{}
	for _, l := range t.d.lines {
		key := l.context + "\x00" + l.exten
		e := byKey[key]
		if e == nil {
			e = &dpExten{context: l.context, exten: l.exten}
			byKey[key] = e
			t.extens = append(t.extens, e)
		}
		e.lines = append(e.lines, l)
	}
}

// isSpyApp reports whether app is ChanSpy or ExtenSpy.
func isSpyApp(app string) bool {
	return strings.EqualFold(app, "ChanSpy") || strings.EqualFold(app, "ExtenSpy")
}

// findAgents reads who the dialplan's extensions dial and which
// SPYGROUP they set: the agents and their teams, and the queues a
// SPYGROUP's channels enter.
func (t *translator) findAgents() {
	for _, e := range t.extens {
		var dialled []*dpAgent
		var queues []string
		type groupSet struct {
			line   *dpLine
			groups []string
		}
		var groups []groupSet
		for _, l := range e.lines {
			switch {
			case strings.EqualFold(l.app, "Dial"):
				dialled = append(dialled, t.dialled(e, l)...)
			case strings.EqualFold(l.app, "Queue"):
				q := strings.TrimSpace(splitArgs(l.args, ',', 0)[0])
				if q != "" && !strings.Contains(q, "$") && enforce.CheckID(q) == nil {
					queues = append(queues, q)
				}
			case strings.EqualFold(l.app, "Set"):
				name, value, ok := strings.Cut(l.args, "=")
				if !ok || !strings.EqualFold(strings.TrimLeft(strings.TrimSpace(name), "_"), "SPYGROUP") {
					continue
				}
				gs, why := spyGroups(value)
				if why != "" {
					t.note(l, NoteTodo, "SPYGROUP %s: give the agents of this extension their teams by hand", why)
					continue
				}
				groups = append(groups, groupSet{l, gs})
			}
		}
		for _, g := range groups {
			for _, a := range dialled {
				a.teams = appendUnique(a.teams, g.groups...)
				a.src = appendUnique(a.src, g.line.where())
			}
			for _, grp := range g.groups {
				t.groupQueues[grp] = appendUnique(t.groupQueues[grp], queues...)
			}
			if len(dialled) == 0 && len(queues) == 0 {
				t.note(g.line, NoteTodo, "SPYGROUP %s is set on channels of %s@%s, which dial no endpoint and enter no queue the import can name: give their agents `teams: [%s]`",
					strings.Join(g.groups, ":"), e.exten, e.context, strings.Join(g.groups, ", "))
			}
		}
	}
	// The channels e() lists are agents too, even when no extension dials
	// them (a queue member, a phone dialled from another file).
	for _, l := range t.d.lines {
		if !strings.EqualFold(l.app, "ChanSpy") {
			continue
		}
		args := splitArgs(l.args, ',', 0)
		if len(args) < 2 {
			continue
		}
		for _, o := range parseSpyOptions(args[1]) {
			if o.letter != 'e' || strings.Contains(o.arg, "$") {
				continue
			}
			for _, ent := range strings.Split(o.arg, ":") {
				if ent = strings.TrimSpace(ent); validStem(ent) {
					t.agents.add(ent, l.where())
				}
			}
		}
	}
}

// dialled returns the agents a Dial line of a literal extension calls.
func (t *translator) dialled(e *dpExten, l *dpLine) []*dpAgent {
	if isPattern(e.exten) {
		return nil
	}
	var out []*dpAgent
	target := splitArgs(l.args, ',', 0)[0]
	for _, s := range strings.Split(target, "&") {
		s = strings.TrimSpace(strings.ReplaceAll(s, "${EXTEN}", e.exten))
		if !validStem(s) {
			continue
		}
		a := t.agents.add(s, l.where())
		a.extens = appendUnique(a.extens, e.exten+"@"+e.context)
		out = append(out, a)
	}
	return out
}

// spyGroups splits a SPYGROUP value or a g() argument into its groups;
// why says what is wrong when it cannot.
func spyGroups(value string) (groups []string, why string) {
	value = strings.TrimSpace(value)
	switch {
	case value == "":
		return nil, "is empty"
	case strings.Contains(value, "$"):
		return nil, fmt.Sprintf("%q is computed when the call runs", value)
	}
	for _, g := range strings.Split(value, ":") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if err := enforce.CheckID(g); err != nil {
			return nil, fmt.Sprintf("group %q is not a valid team name", g)
		}
		groups = appendUnique(groups, g)
	}
	if len(groups) == 0 {
		return nil, "names no group"
	}
	return groups, ""
}

// translateSpyLines works out the grants of every ChanSpy and ExtenSpy
// line, noting what it leaves out.
func (t *translator) translateSpyLines() {
	t.spy = map[*dpLine][]enforce.Grant{}
	for _, e := range t.extens {
		for i, l := range e.lines {
			app, args, guarded := l.app, l.args, ""
			if strings.EqualFold(app, "ExecIf") {
				// ExecIf(cond?App(args)[:App(args)]): the spy runs only when
				// cond holds.
				if _, then, ok := strings.Cut(args, "?"); ok {
					branches := splitArgs(then, ':', 2)
					app, args = splitApp(strings.TrimSpace(branches[0]))
					guarded = "it runs only when the ExecIf condition holds"
					if isSpyApp(app) && len(branches) > 1 && mentionsSpy(branches[1]) {
						t.note(l, NotePartly, "the spy application of ExecIf's false branch is not read: grant what it allows by hand")
					}
				}
			}
			if !isSpyApp(app) {
				if mentionsSpy(l.args) {
					t.im.SpyLines++
					t.note(l, NoteNotTranslated, "ChanSpy/ExtenSpy run through %s(...) is not read: grant what it allows by hand", l.app)
				}
				continue
			}
			t.im.SpyLines++
			if guarded == "" {
				guarded = guardBefore(e.lines[:i])
			}
			grants := t.translate(l, app, args)
			if len(grants) == 0 {
				continue
			}
			t.im.Translated++
			t.spy[l] = grants
			if guarded != "" {
				t.note(l, NoteReview, "%s; the proposal grants it to every phone of context %s: narrow the profile's users by hand", guarded, l.context)
			}
			if l.cid {
				t.note(l, NoteReview, "extension %s matches only some caller ids; the proposal grants it to every phone of context %s: narrow the profile's users by hand", l.exten, l.context)
			}
		}
	}
}

// guardBefore names the first priority before a spy line that may stop
// some callers from reaching it, or "".
func guardBefore(before []*dpLine) string {
	for _, l := range before {
		switch strings.ToLower(l.app) {
		case "gotoif", "gosubif", "gotoiftime", "execif", "execiftime", "authenticate", "vmauthenticate", "macroif":
			return fmt.Sprintf("%s at %s may keep some callers from this line", l.app, l.where())
		}
	}
	return ""
}

// ignoredOptions explains the options that shape a spy session without
// deciding who may spy on whom. It is read-only.
var ignoredOptions = map[byte]string{
	'b': "b (bridged calls only: callwarden monitors answered calls)",
	'c': "c (cycle digit)",
	'D': "D (interleaved recording)",
	'E': "E (exit when the spied channel hangs up)",
	'l': "l (long audio queue)",
	'n': "n (say the spied agent's name)",
	'N': "N (do not answer)",
	'q': "q (no beep to the supervisor)",
	's': "s (do not say the channel technology)",
	'S': "S (stop when no channel is left)",
	'v': "v (volume)",
	'x': "x (exit digit)",
	'X': "X (exit to a one-digit extension: what that extension runs is not followed)",
}

// translate returns the grants of one spy line; none when it cannot be
// expressed without granting more than it does (noted).
func (t *translator) translate(l *dpLine, app, rawArgs string) []enforce.Grant {
	chanSpy := strings.EqualFold(app, "ChanSpy")
	args := splitArgs(rawArgs, ',', 0)
	not := func(format string, a ...any) []enforce.Grant {
		t.note(l, NoteNotTranslated, "%s: "+format, append([]any{app}, a...)...)
		return nil
	}
	var whisper, barge, dtmf bool
	var groups, enforced []string
	var ignored, partly []string
	opts := ""
	if len(args) > 1 {
		opts = strings.TrimSpace(args[1])
	}
	for _, o := range parseSpyOptions(opts) {
		switch o.letter {
		case 'w':
			whisper = true
		case 'B':
			barge = true
		case 'd':
			dtmf = true
		case 'W':
			return not("W (private whisper) lets the supervisor talk to the agent without hearing the call; every callwarden monitor mode hears it, so any grant would allow more than this line")
		case 'o':
			return not("o lets the supervisor hear the spied channel only, not the other party; callwarden's monitor modes hear both")
		case 'u':
			return not("u makes the first argument one channel's unique id or full name, known only when the line runs")
		case 'g':
			gs, why := spyGroups(o.arg)
			if why != "" {
				return not("g(%s): the group %s", o.arg, why)
			}
			groups = gs
		case 'e':
			if !chanSpy {
				ignored = append(ignored, "e (ExtenSpy ignores it: Asterisk applies e() to ChanSpy only)")
				continue
			}
			if strings.Contains(o.arg, "$") {
				return not("e(%s) is computed when the call runs", o.arg)
			}
			for _, ent := range strings.Split(o.arg, ":") {
				if ent = strings.TrimSpace(ent); ent != "" {
					enforced = append(enforced, ent)
				}
			}
			if len(enforced) == 0 {
				return not("e() lists no channel, so it allows none")
			}
		case 'r':
			partly = append(partly, "r (record the spied audio to the monitor spool) is not granted: add recording.start by hand if it is meant")
		default:
			if why, ok := ignoredOptions[o.letter]; ok {
				ignored = append(ignored, why)
			} else {
				ignored = append(ignored, fmt.Sprintf("%q (not an option of %s: Asterisk ignores it)", o.letter, app))
			}
		}
	}
	if len(args) > 2 {
		ignored = append(ignored, "arguments after the options")
	}
	actions := enforce.NewActionSet(enforce.MonitorListen)
	if (whisper && !barge) || dtmf {
		actions |= enforce.NewActionSet(enforce.MonitorWhisper)
	}
	if barge || dtmf {
		actions |= enforce.NewActionSet(enforce.MonitorBarge)
	}
	agents, constrained, why := t.targets(l, chanSpy, strings.TrimSpace(args[0]))
	if why != "" {
		return not("%s", why)
	}
	if len(enforced) > 0 {
		var kept []*dpAgent
		for _, ent := range enforced {
			if !strings.Contains(ent, "/") {
				partly = append(partly, fmt.Sprintf("e() entry %q matches no channel: Asterisk compares e() entries with the spied channel's name (PJSIP/%s), not its extension", ent, ent))
				continue
			}
			a := t.agents.byStem[strings.ToLower(ent)]
			if a == nil {
				partly = append(partly, fmt.Sprintf("e() entry %q is not an endpoint the import can name", ent))
				continue
			}
			if !constrained || containsAgent(agents, a) {
				kept = appendAgent(kept, a)
			}
		}
		agents, constrained = kept, true
	}
	if constrained && len(agents) == 0 {
		why := "its targets are no agent the dialplan names (no Dial of theirs, no e() entry): list them as users and grant `agents:` by hand"
		if len(partly) > 0 {
			why = strings.Join(partly, "; ") + "; so it reaches no agent"
		}
		return not("%s", why)
	}
	if len(ignored) > 0 {
		t.note(l, NoteIgnored, "options that decide no right: %s", strings.Join(ignored, "; "))
	}
	for _, p := range partly {
		t.note(l, NotePartly, "%s", p)
	}
	base := enforce.Grant{Actions: actions}
	if constrained {
		ids := make([]string, len(agents))
		for i, a := range agents {
			ids[i] = a.id
		}
		sort.Strings(ids)
		base.Scopes[enforce.DimAgents] = enforce.Scope{Kind: enforce.ScopeList, Values: ids}
	}
	if len(groups) == 0 {
		return []enforce.Grant{base}
	}
	byTeam := base
	byTeam.Scopes[enforce.DimTeams] = enforce.Scope{Kind: enforce.ScopeList, Values: groups}
	grants := []enforce.Grant{byTeam}
	var queues []string
	for _, g := range groups {
		queues = appendUnique(queues, t.groupQueues[g]...)
	}
	if len(queues) > 0 {
		byQueue := base
		byQueue.Scopes[enforce.DimQueues] = enforce.Scope{Kind: enforce.ScopeList, Values: queues}
		grants = append(grants, byQueue)
	}
	return grants
}

// targets returns the agents a spy line's first argument reaches:
// constrained is false when it reaches every channel (ChanSpy() or
// ChanSpy(all)); why says why it cannot be translated.
func (t *translator) targets(l *dpLine, chanSpy bool, arg string) (agents []*dpAgent, constrained bool, why string) {
	if chanSpy {
		if arg == "" || arg == "all" {
			return nil, false, ""
		}
		lit, pat, why := expandExten(arg, l)
		if why != "" {
			return nil, false, "the channel prefix " + why
		}
		for _, a := range t.agents.list {
			for _, s := range a.stems {
				if stemHasPrefix(s, lit, pat) {
					agents = appendAgent(agents, a)
				}
			}
		}
		if len(agents) > 1 || pat != "" || len(agents) == 1 && !strings.EqualFold(agents[0].stems[0], lit) {
			t.note(l, NoteTodo, "channel prefix %q reaches every channel whose name starts with it; the grant lists the agents of the dialplan that do (%d): add any other agent under that prefix to its agents", arg, len(agents))
		}
		return agents, true, ""
	}
	exten, context, _ := strings.Cut(arg, "@")
	exten, context = strings.TrimSpace(exten), strings.TrimSpace(context)
	if context == "" {
		context = l.context
	}
	if exten == "" {
		return nil, false, "no extension to spy on"
	}
	if strings.Contains(context, "$") {
		return nil, false, fmt.Sprintf("the context %q is computed when the call runs", context)
	}
	lit, pat, why := expandExten(exten, l)
	if why != "" {
		return nil, false, "the extension " + why
	}
	for _, a := range t.agents.list {
		for _, ref := range a.extens {
			e, c, _ := strings.Cut(ref, "@")
			if c == context && strings.HasPrefix(e, lit) && (pat == "" && e == lit || pat != "" && matchPattern(pat, e[len(lit):])) {
				agents = appendAgent(agents, a)
			}
		}
	}
	return agents, true, ""
}

// expandExten reads a spy target written literally or as
// <literal>${EXTEN:n}, as in `exten => _*222XXXX,1,ChanSpy(PJSIP/${EXTEN:4})`:
// it returns the literal text and, when the extension is a pattern, the
// part of the pattern the dialled digits match after it.
func expandExten(arg string, l *dpLine) (lit, pat, why string) {
	i := strings.Index(arg, "${")
	if i < 0 {
		if strings.Contains(arg, "$[") {
			return "", "", fmt.Sprintf("%q is computed when the call runs", arg)
		}
		return arg, "", ""
	}
	pre, rest := arg[:i], arg[i+2:]
	end := strings.IndexByte(rest, '}')
	if end < 0 || end != len(rest)-1 || strings.Contains(pre, "$") {
		return "", "", fmt.Sprintf("%q is computed when the call runs", arg)
	}
	name, offset, hasOffset := strings.Cut(rest[:end], ":")
	if name != "EXTEN" {
		return "", "", fmt.Sprintf("%q is computed when the call runs (only ${EXTEN} and ${EXTEN:n} are read)", arg)
	}
	n := 0
	if hasOffset {
		var err error
		if n, err = strconv.Atoi(offset); err != nil || n < 0 {
			return "", "", fmt.Sprintf("%q: only ${EXTEN:n} with n a non-negative offset is read", arg)
		}
	}
	if !isPattern(l.exten) {
		if n > len(l.exten) {
			return "", "", fmt.Sprintf("%q is empty in extension %s", arg, l.exten)
		}
		return pre + l.exten[n:], "", ""
	}
	p := l.exten[1:]
	k := patternLiteral(p)
	if n > k {
		return "", "", fmt.Sprintf("%q starts inside the pattern %s", arg, l.exten)
	}
	return pre + p[n:k], p[k:], ""
}

// stemHasPrefix reports whether a channel named stem-0000002a is one a
// ChanSpy prefix lit (followed by digits matching pat, when pat is set)
// spies on. Asterisk compares channel names without case.
func stemHasPrefix(stem, lit, pat string) bool {
	if len(stem) < len(lit) || !strings.EqualFold(stem[:len(lit)], lit) {
		return false
	}
	if pat == "" {
		return true
	}
	rest := stem[len(lit):]
	for i := 0; i <= len(rest); i++ {
		if matchPattern(pat, rest[:i]) {
			return true
		}
	}
	return false
}

func containsAgent(list []*dpAgent, a *dpAgent) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func appendAgent(list []*dpAgent, a *dpAgent) []*dpAgent {
	if containsAgent(list, a) {
		return list
	}
	return append(list, a)
}
