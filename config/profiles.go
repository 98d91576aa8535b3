package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/callwarden/callwarden/enforce"
)

// ProfilesVersion is the only version of the profiles file format this
// package reads and writes.
const ProfilesVersion = 1

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
	// define records that what (profile, user) name is defined at pos;
	// false, after reporting it, when it already was.
	define := func(seen map[string]Position, what, name string, pos Position) bool {
		if first, dup := seen[name]; dup {
			add(pos, "%s %q already defined at %s", what, name, where(first, pos.File))
			return false
		}
		seen[name] = pos
		return true
	}
	// The users are counted first so that the policy's slice is allocated
	// once: appending 100k users (about 200 bytes each) would copy them
	// over and over as it grows.
	nprofiles, nusers := 0, 0
	for _, d := range docs {
		nprofiles += len(d.profiles)
		nusers += len(d.users)
	}
	var pol enforce.Policy
	if nprofiles > 0 {
		pol.Profiles = make([]enforce.Profile, 0, nprofiles)
	}
	if nusers > 0 {
		pol.Users = make([]enforce.User, 0, nusers)
	}
	profiles := make(map[string]Position, nprofiles)
	for _, d := range docs {
		for _, pe := range d.profiles {
			if pe.Name != "" && define(profiles, "profile", pe.Name, pe.namePos) {
				pol.Profiles = append(pol.Profiles, pe.Profile)
			}
		}
	}
	// checkRef reports a reference to a profile no file defines.
	checkRef := func(r ref) {
		if _, ok := profiles[r.name]; ok {
			return
		}
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
	users := make(map[string]Position, nusers)
	identities := make(map[string]struct {
		user string
		pos  Position
	}, nusers)
	for _, d := range docs {
		for _, pe := range d.profiles {
			for _, r := range pe.refs {
				checkRef(r)
			}
		}
		for _, ue := range d.users {
			if ue.ID == "" || !define(users, "user", ue.ID, ue.idPos) {
				continue
			}
			if r := ue.profileRef; r != nil {
				checkRef(*r)
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
	if err := enforce.ValidatePolicy(pol); err != nil {
		// Every rule of NewSnapshot is checked above with a position; this
		// is a safety net for a rule added to enforce later. It validates
		// only: the caller compiles the policy it serves.
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
