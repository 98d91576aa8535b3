package config

import (
	"fmt"
	"sort"
	"strings"
)

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
