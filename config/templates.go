package config

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// templateFiles holds the seed templates, one profiles file per seed system,
// compiled into the binary so `callwarden profiles init --template xivo`
// works without any file on disk. It is read-only: embed.FS cannot be
// modified, so it is not mutable global state.
//
//go:embed templates/*.yaml
var templateFiles embed.FS

// templateDir is the directory of templateFiles holding the templates.
const templateDir = "templates"

// templateExt is the file extension of every template.
const templateExt = ".yaml"

// ErrUnknownTemplate is returned (wrapped) by Template for a name that is
// not an embedded template, so the CLI can list TemplateNames in its answer.
var ErrUnknownTemplate = errors.New("unknown template")

// Templates returns the embedded seed templates as a read-only file system
// whose root holds one "<name>.yaml" per template, for callers that want to
// walk or copy them all.
func Templates() fs.FS {
	sub, err := fs.Sub(templateFiles, templateDir)
	if err != nil {
		// fs.Sub fails only on an invalid path; templateDir is a valid
		// constant, so this cannot happen. Fall back to the unrooted tree
		// rather than panic.
		return templateFiles
	}
	return sub
}

// TemplateNames returns the names of the embedded templates ("callrex",
// "hosted-pbx", "webex-cc", "xcally", "xivo"), sorted, as accepted by
// Template.
func TemplateNames() []string {
	entries, err := templateFiles.ReadDir(templateDir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), templateExt); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Template returns the profiles file of the template called name (e.g.
// "xivo"). The returned slice is a fresh copy the caller may modify. An
// unknown name yields an error wrapping ErrUnknownTemplate that lists the
// known names.
func Template(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return nil, fmt.Errorf("template %q: %w (want one of %s)", name, ErrUnknownTemplate, strings.Join(TemplateNames(), ", "))
	}
	data, err := templateFiles.ReadFile(path.Join(templateDir, name+templateExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("template %q: %w (want one of %s)", name, ErrUnknownTemplate, strings.Join(TemplateNames(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", name, err)
	}
	return data, nil
}

// StarterProfiles returns the template called name as the start of a
// profiles file (`callwarden profiles init`): the template, then a
// commented example of the `users:` and `protected:` sections it lacks,
// naming one of its profiles, so the file validates as written and again
// once the example is uncommented. An unknown name is an error wrapping
// ErrUnknownTemplate.
func StarterProfiles(name string) ([]byte, error) {
	data, err := Template(name)
	if err != nil {
		return nil, err
	}
	pol, err := ParseProfiles(name+templateExt, data)
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", name, err)
	}
	profile := "no-profile"
	if len(pol.Profiles) > 0 {
		profile = pol.Profiles[0].Name
	}
	var b bytes.Buffer
	b.Write(data)
	if !bytes.HasSuffix(data, []byte("\n")) {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, `
# Your users and protected targets (see docs/templates.md). Uncomment and
# edit, then check with `+"`callwarden profiles validate -f FILE`"+`:
# users:
#   - id: alice
#     profile: %s
#     queues: [sales, support]       # attributed queues (queues: assigned)
#     teams: [team-a]                # attributed teams (teams: assigned)
#     agents: [alice, dave]          # managed users (agents: assigned)
#     identities: [PJSIP/1001, "1001"]
#   - id: dave
#     teams: [team-a]                # no profile: no access
# protected:
#   users: [dave]                    # never monitored, whatever the grants
#   queues: [hr-hotline]
`, profile)
	return b.Bytes(), nil
}
