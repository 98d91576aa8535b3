package config

import (
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
