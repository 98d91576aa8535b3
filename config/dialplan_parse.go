package config

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// dpLine is one priority of an Asterisk dialplan (extensions.conf): where
// it is written, the context and extension it belongs to, and the
// application it runs with its raw argument text.
type dpLine struct {
	file    string
	line    int
	text    string // the line as written, comment and blanks trimmed
	context string
	exten   string // as written: "1001", "_*222XXXX"
	cid     bool   // the extension also matches on caller id ("1001/200")
	app     string // "ChanSpy"
	args    string // between the application's parentheses
}

// where renders the line's position as "file:line".
func (l *dpLine) where() string { return l.file + ":" + strconv.Itoa(l.line) }

// dpInclude is an `include => context` line.
type dpInclude struct {
	file, target string
	line         int
}

// dialplan is what the importer reads of one or more extensions.conf
// files: every priority in file order and the includes of each context.
type dialplan struct {
	lines    []*dpLine
	includes map[string][]dpInclude // by including context
	// contexts lists the contexts in the order first met, with where.
	contexts []dpInclude
	notes    []DialplanNote // what the reader itself could not follow
	// unplaced counts the spy lines that are in no extension.
	unplaced int
}

// maxDialplanLine bounds one line of a dialplan file; Asterisk's own
// config reader stops far below.
const maxDialplanLine = 64 << 10

// readDialplan reads one extensions.conf file into d. It never fails: a
// line it cannot read becomes a note, so the report names it.
func (d *dialplan) read(file string, data []byte) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxDialplanLine)
	context, exten, cid := "", "", false
	inBlock := false // inside a ;-- block comment --;
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		var text string
		text, inBlock = stripComment(raw, inBlock)
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		note := func(kind NoteKind, msg string) {
			d.notes = append(d.notes, DialplanNote{File: file, Line: n, Kind: kind, Msg: msg})
		}
		// read takes one line in; false when it holds no priority.
		read := func() bool {
			if text[0] == '#' {
				note(NoteIgnored, "`"+text+"` is not followed: give that file to the import as well")
				return false
			}
			if text[0] == '[' {
				end := strings.IndexByte(text, ']')
				if end < 0 {
					note(NoteIgnored, "context header without `]`: lines below are read as part of the previous context")
					return false
				}
				context, exten, cid = strings.TrimSpace(text[1:end]), "", false
				d.contexts = append(d.contexts, dpInclude{file: file, line: n, target: context})
				return false
			}
			key, value, ok := cutKey(text)
			if !ok || context == "" {
				return false
			}
			switch strings.ToLower(key) {
			case "include":
				if d.includes == nil {
					d.includes = make(map[string][]dpInclude)
				}
				target, _, _ := strings.Cut(value, ",") // include => ctx,timerange
				d.includes[context] = append(d.includes[context], dpInclude{file: file, line: n, target: strings.TrimSpace(target)})
				return false
			case "exten":
				fields := splitArgs(value, ',', 3)
				if len(fields) < 3 {
					return false // a malformed line
				}
				exten, cid = strings.TrimSpace(fields[0]), false
				if e, _, has := strings.Cut(exten, "/"); has {
					exten, cid = strings.TrimSpace(e), true
				}
				value = fields[2]
				if strings.EqualFold(strings.TrimSpace(fields[1]), "hint") {
					return false
				}
			case "same":
				fields := splitArgs(value, ',', 2)
				if len(fields) < 2 || exten == "" {
					return false
				}
				value = fields[1]
			default:
				return false
			}
			app, args := splitApp(strings.TrimSpace(value))
			d.lines = append(d.lines, &dpLine{file: file, line: n, text: text, context: context,
				exten: exten, cid: cid, app: app, args: args})
			return true
		}
		if !read() && mentionsSpy(text) {
			d.unplaced++
			note(NoteNotTranslated, "a spy application outside any extension the import can read (a `same =>` with no `exten =>` before it, a line outside a context, or not extensions.conf syntax)")
		}
	}
	if err := sc.Err(); err != nil {
		d.notes = append(d.notes, DialplanNote{File: file, Line: n + 1, Kind: NoteNotTranslated,
			Msg: "reading stopped here: " + err.Error()})
	}
}

// mentionsSpy reports whether text names ChanSpy or ExtenSpy, so that a
// spy line the import cannot place is still reported.
func mentionsSpy(text string) bool {
	l := strings.ToLower(text)
	return strings.Contains(l, "chanspy") || strings.Contains(l, "extenspy")
}

// stripComment removes what Asterisk's config reader treats as a
// comment: from an unescaped `;` to the end of the line, and `;--` block
// comments up to `--;`, which may span lines (inBlock carries that state).
func stripComment(s string, inBlock bool) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if inBlock {
			if strings.HasPrefix(s[i:], "--;") {
				inBlock = false
				i += 2
			}
			continue
		}
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ';':
			b.WriteByte(';')
			i++
		case strings.HasPrefix(s[i:], ";--"):
			inBlock = true
			i += 2
		case s[i] == ';':
			return b.String(), false
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), inBlock
}

// cutKey splits "exten => value" and "exten = value".
func cutKey(s string) (key, value string, ok bool) {
	i := strings.IndexByte(s, '=')
	if i <= 0 {
		return "", "", false
	}
	key = strings.TrimSpace(s[:i])
	value = strings.TrimPrefix(s[i+1:], ">")
	return key, strings.TrimSpace(value), true
}

// splitApp splits "App(args)" into the application name and the text
// between its outer parentheses; "App" alone has no arguments.
func splitApp(s string) (app, args string) {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return s, ""
	}
	app, rest := strings.TrimSpace(s[:open]), s[open+1:]
	if end := strings.LastIndexByte(rest, ')'); end >= 0 {
		rest = rest[:end]
	}
	return app, rest
}

// splitArgs splits s at sep, as Asterisk separates application arguments:
// not inside parentheses, brackets, braces (`${CUT(a,b,c)}`) or double
// quotes, nor after a backslash. When max > 0 the last field holds the
// rest of s unsplit.
func splitArgs(s string, sep byte, max int) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ')' || c == ']' || c == '}') && depth > 0:
			depth--
		case c == sep && depth == 0 && (max <= 0 || len(out) < max-1):
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// spyOption is one option letter of ChanSpy/ExtenSpy with its argument.
type spyOption struct {
	letter byte
	arg    string
	hasArg bool
}

// parseSpyOptions reads an option string as ast_app_parse_options does:
// one letter per option, an argument in parentheses right after it.
func parseSpyOptions(s string) []spyOption {
	var out []spyOption
	for i := 0; i < len(s); i++ {
		o := spyOption{letter: s[i]}
		if i+1 < len(s) && s[i+1] == '(' {
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				o.arg, o.hasArg = s[i+2:], true
				i = len(s)
			} else {
				o.arg, o.hasArg = s[i+2:i+2+end], true
				i += 2 + end
			}
		}
		out = append(out, o)
	}
	return out
}

// isPattern reports whether an extension is a pattern (`_X.`).
func isPattern(exten string) bool { return strings.HasPrefix(exten, "_") }

// patternLiteral returns how many leading characters of a pattern
// extension (without its `_`) are literal, before the first X, Z, N,
// class, `.` or `!`.
func patternLiteral(p string) int {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case 'X', 'x', 'Z', 'z', 'N', 'n', '[', '.', '!':
			return i
		}
	}
	return len(p)
}

// matchPattern reports whether s matches the Asterisk extension pattern p
// (without its `_`): X is a digit, Z 1-9, N 2-9, [..] a class with
// ranges, `.` one or more characters, `!` zero or more.
func matchPattern(p, s string) bool {
	for len(p) > 0 {
		switch c := p[0]; c {
		case '.':
			return len(s) > 0
		case '!':
			return true
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 || len(s) == 0 || !inClass(p[1:end], s[0]) {
				return false
			}
			p, s = p[end+1:], s[1:]
			continue
		default:
			if len(s) == 0 {
				return false
			}
			var ok bool
			switch c {
			case 'X', 'x':
				ok = s[0] >= '0' && s[0] <= '9'
			case 'Z', 'z':
				ok = s[0] >= '1' && s[0] <= '9'
			case 'N', 'n':
				ok = s[0] >= '2' && s[0] <= '9'
			default:
				ok = s[0] == c
			}
			if !ok {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}

// inClass reports whether c is in the character class body cls ("1-5a").
func inClass(cls string, c byte) bool {
	for i := 0; i < len(cls); i++ {
		if i+2 < len(cls) && cls[i+1] == '-' {
			if c >= cls[i] && c <= cls[i+2] {
				return true
			}
			i += 2
			continue
		}
		if cls[i] == c {
			return true
		}
	}
	return false
}
