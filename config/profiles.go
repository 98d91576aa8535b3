package config

import (
	"errors"

	"github.com/callwarden/callwarden/enforce"
)

// Position locates a problem in a profiles file.
type Position struct {
	File  string
	Line  int
	Field string // YAML path such as "profiles[0].grants[1].actions[2]"
}

// FieldError is one problem in a profiles file, printed as
// "file:line: field: message".
type FieldError struct {
	Position
	Msg string
}

func (e *FieldError) Error() string { return "TODO" }

// Errors is every problem found in one load; nothing was applied.
type Errors []*FieldError

func (e Errors) Error() string { return "TODO" }

// ParseProfiles parses one profiles document named name (used in errors).
// Unknown fields, unknown actions, unknown profile references, duplicate ids,
// bad durations, bad time zones and windows that end before they start are
// errors of type Errors.
func ParseProfiles(name string, data []byte) (enforce.Policy, error) {
	return enforce.Policy{}, errors.New("TODO")
}

// LoadProfiles reads and merges the given files (profiles from one, users
// from another...). A profile, user or protected entry defined in two files
// is a conflict and an error.
func LoadProfiles(paths ...string) (enforce.Policy, error) {
	return enforce.Policy{}, errors.New("TODO")
}

// MarshalProfiles renders a policy back into the profiles file format
// (used by `profiles export`).
func MarshalProfiles(p enforce.Policy) ([]byte, error) {
	return nil, errors.New("TODO")
}
