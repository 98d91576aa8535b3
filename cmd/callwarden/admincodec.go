package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
)

// configCodec is the admin API's adminapi.Codec, backed by the profiles file
// parser: a JSON body (JSON is YAML) is wrapped, on its own first line,
// into a one-entry profiles document, so the API accepts exactly what a
// profiles file accepts and reports the same messages, with field paths
// relative to the body ("grants[0].actions[1]") and the body's own line
// numbers. The profiles that exist are added as empty stubs after the body
// so that references to them resolve.
type configCodec struct{}

var _ adminapi.Codec = configCodec{}

// DecodeProfile implements adminapi.Codec.
func (configCodec) DecodeProfile(body []byte, profiles []string) (enforce.Profile, error) {
	name, err := bodyKey(body, "name")
	if err != nil {
		return enforce.Profile{}, err
	}
	var doc bytes.Buffer
	doc.WriteString(`{"version": 1, "profiles": [`)
	doc.Write(body)
	writeStubs(&doc, profiles, name, true)
	doc.WriteString("]}")
	return parseOne(doc.Bytes(), "profiles[0]", "profile", func(p enforce.Policy) []enforce.Profile { return p.Profiles })
}

// DecodeUser implements adminapi.Codec.
func (configCodec) DecodeUser(body []byte, profiles []string) (enforce.User, error) {
	if _, err := bodyKey(body, "id"); err != nil {
		return enforce.User{}, err
	}
	var doc bytes.Buffer
	doc.WriteString(`{"version": 1, "profiles": [`)
	writeStubs(&doc, profiles, "", false)
	doc.WriteString(`], "users": [`)
	doc.Write(body)
	doc.WriteString("]}")
	return parseOne(doc.Bytes(), "users[0]", "user", func(p enforce.Policy) []enforce.User { return p.Users })
}

// parseOne parses the wrapped document and returns the body's entry: the
// first of the section entries picks, whose errors are relative to prefix.
func parseOne[T any](doc []byte, prefix, what string, entries func(enforce.Policy) []T) (T, error) {
	var zero T
	p, err := config.ParseProfiles("body", doc)
	if err != nil {
		return zero, bodyErrors(err, prefix)
	}
	if es := entries(p); len(es) > 0 {
		return es[0], nil
	}
	return zero, &adminapi.ValidationError{Fields: []adminapi.FieldError{{Message: "no " + what + " in the body"}}}
}

// writeStubs appends an empty profile for each name but skip, each quoted
// as JSON so no name can break out of the document.
func writeStubs(doc *bytes.Buffer, names []string, skip string, leadingComma bool) {
	first := !leadingComma
	for _, n := range names {
		if n == skip {
			continue
		}
		q, _ := json.Marshal(n) // a string always marshals
		if !first {
			doc.WriteString(", ")
		}
		first = false
		doc.WriteString(`{"name": `)
		doc.Write(q)
		doc.WriteString("}")
	}
}

// bodyKey checks that body is exactly one JSON object (so wrapping it
// cannot change the document around it) and returns its string field key,
// or "" when absent or not a string.
func bodyKey(body []byte, key string) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(body[:min(int(se.Offset), len(body))], []byte("\n"))
			return "", &adminapi.ValidationError{Fields: []adminapi.FieldError{{Line: line, Message: "invalid JSON: " + se.Error()}}}
		}
		return "", &adminapi.ValidationError{Fields: []adminapi.FieldError{{Message: "the body must be one JSON object"}}}
	}
	var s string
	if raw, ok := obj[key]; ok {
		_ = json.Unmarshal(raw, &s) // not a string: the parser reports it with its path
	}
	return s, nil
}

// bodyErrors turns the parser's errors on the wrapped document into field
// errors relative to the body at prefix ("profiles[0]").
func bodyErrors(err error, prefix string) error {
	var list config.Errors
	if !errors.As(err, &list) {
		return &adminapi.ValidationError{Fields: []adminapi.FieldError{{Message: err.Error()}}}
	}
	out := make([]adminapi.FieldError, 0, len(list))
	for _, fe := range list {
		field := fe.Field
		switch {
		case field == prefix:
			field = ""
		case strings.HasPrefix(field, prefix+"."):
			field = strings.TrimPrefix(field, prefix+".")
		}
		out = append(out, adminapi.FieldError{Field: field, Line: fe.Line, Message: fe.Msg})
	}
	return &adminapi.ValidationError{Fields: out}
}

// EncodeProfile implements adminapi.Codec with the profiles file's own
// field names and spellings (config.MarshalProfiles).
func (configCodec) EncodeProfile(p enforce.Profile) (json.RawMessage, error) {
	return encodeEntry(enforce.Policy{Profiles: []enforce.Profile{p}}, "profiles")
}

// EncodeUser implements adminapi.Codec.
func (configCodec) EncodeUser(u enforce.User) (json.RawMessage, error) {
	return encodeEntry(enforce.Policy{Users: []enforce.User{u}}, "users")
}

func encodeEntry(p enforce.Policy, list string) (json.RawMessage, error) {
	y, err := config.MarshalProfiles(p)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		return nil, fmt.Errorf("encode %s: %w", list, err)
	}
	items, _ := doc[list].([]any)
	if len(items) != 1 {
		return nil, fmt.Errorf("encode %s: want one entry, got %d", list, len(items))
	}
	b, err := json.Marshal(items[0])
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", list, err)
	}
	return b, nil
}
