package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// initProfiles writes a seed template as the start of a profiles file, to
// standard output or to -o FILE, which it never overwrites without
// --force.
func (e *env) initProfiles(_ context.Context, args []string) int {
	fs := e.newFlagSet("profiles init", "profiles init --template NAME [-o FILE] [--force]  (templates: "+strings.Join(config.TemplateNames(), ", ")+")")
	name := fs.String("template", "", "seed template `NAME`: "+strings.Join(config.TemplateNames(), ", "))
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	force := fs.Bool("force", false, "overwrite -o FILE if it exists")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	if *name == "" {
		return e.badInput("profiles init: --template NAME is required (want one of %s)", strings.Join(config.TemplateNames(), ", "))
	}
	data, err := config.StarterProfiles(*name)
	if errors.Is(err, config.ErrUnknownTemplate) {
		return e.badInput("profiles init: %v", err)
	}
	if err != nil {
		return e.failure("profiles init: %v", err)
	}
	if code := e.writeOutput(fs.Name(), *out, *force, data); code != exitOK || *out == "" {
		return code
	}
	fmt.Fprintf(e.stderr, "wrote %s from template %s; add your users and run: callwarden profiles validate -f %s\n", *out, *name, *out)
	return exitOK
}

// writeOutput writes data to standard output, or to the file path when
// it is set, which it never overwrites without force.
func (e *env) writeOutput(cmd, path string, force bool, data []byte) int {
	if path == "" {
		if _, err := e.stdout.Write(data); err != nil {
			return e.failure("%s: %v", cmd, err)
		}
		return exitOK
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, os.ErrExist) {
		return e.badInput("%s: %s exists (give --force to overwrite it)", cmd, path)
	}
	if err != nil {
		return e.failure("%s: %v", cmd, err)
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return e.failure("%s: %s: %v", cmd, path, werr)
	}
	return exitOK
}

// importDialplan proposes a profiles file from the ChanSpy and ExtenSpy
// lines of Asterisk dialplans (config.ImportDialplan): the file on
// standard output or -o FILE, the report on standard error. Lines it
// cannot translate are reported, not failed on: only unreadable input
// and bad flags exit non-zero.
func (e *env) importDialplan(_ context.Context, args []string) int {
	fs := e.newFlagSet("profiles import-dialplan", "profiles import-dialplan FILE... [--supervisors CONTEXT=ID[,ID...]]... [-o FILE] [--force]")
	out := fs.String("o", "", "write the proposal to `FILE` instead of standard output")
	force := fs.Bool("force", false, "overwrite -o FILE if it exists")
	var sups stringList
	fs.Var(&sups, "supervisors", "`CONTEXT=ID[,ID...]`: the users whose phones dial from CONTEXT hold its profile (repeatable)")
	paths, code := e.parseInterleaved(fs, args)
	if code >= 0 {
		return code
	}
	if len(paths) == 0 {
		fs.Usage()
		return e.badInput("%s: want one or more dialplan files (extensions.conf)", fs.Name())
	}
	supervisors := map[string][]string{}
	for _, s := range sups {
		ctx, ids, ok := strings.Cut(s, "=")
		if !ok || ctx == "" || ids == "" {
			return e.badInput("%s: --supervisors %q: want CONTEXT=ID[,ID...]", fs.Name(), s)
		}
		for _, id := range strings.Split(ids, ",") {
			supervisors[ctx] = append(supervisors[ctx], strings.TrimSpace(id))
		}
	}
	files := make([]config.DialplanFile, 0, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return e.badInput("%s: %v", fs.Name(), err)
		}
		files = append(files, config.DialplanFile{Name: path, Data: data})
	}
	im, err := config.ImportDialplan(files, supervisors)
	if err != nil {
		return e.badInput("%s: %v", fs.Name(), err)
	}
	data, err := config.MarshalDialplanImport(im)
	if err != nil {
		return e.failure("%s: %v", fs.Name(), err)
	}
	if code := e.writeOutput(fs.Name(), *out, *force, data); code != exitOK {
		return code
	}
	counts := map[config.NoteKind]int{}
	for _, n := range im.Notes {
		fmt.Fprintln(e.stderr, n)
		counts[n.Kind]++
	}
	fmt.Fprintf(e.stderr, "%d ChanSpy/ExtenSpy lines, %d translated (%d not translated, %d partly, %d to review, %d todo); %d profiles, %d users\n",
		im.SpyLines, im.Translated, counts[config.NoteNotTranslated], counts[config.NotePartly], counts[config.NoteReview], counts[config.NoteTodo],
		len(im.Policy.Profiles), len(im.Policy.Users))
	if *out != "" {
		fmt.Fprintf(e.stderr, "wrote %s; once the todo lines are done, run: callwarden profiles validate -f %s\n", *out, *out)
	}
	return exitOK
}

// loadFiles loads the profiles files (-f, required) of the command fs
// parsed, as serve and check would. When they do not load it prints every
// problem, one per line, then after (when set), and returns exit 2;
// otherwise -1.
func (e *env) loadFiles(fs *flag.FlagSet, files []string, after string) (enforce.Policy, int) {
	if len(files) == 0 {
		return enforce.Policy{}, e.badInput("%s: -f FILE is required", fs.Name())
	}
	_, p, err := e.loadSnapshot(files)
	if err != nil {
		for _, l := range errorLines(err) {
			fmt.Fprintln(e.stderr, l)
		}
		if after != "" {
			fmt.Fprintln(e.stderr, after)
		}
		return p, exitBadInput
	}
	return p, -1
}

// validate loads the profiles files as serve and check would, and prints
// either a one-line summary or every problem, one per line, exit 2.
func (e *env) validate(_ context.Context, args []string) int {
	fs := e.newFlagSet("profiles validate", "profiles validate -f FILE [-f FILE...]")
	var files stringList
	fileFlags(fs, &files, true)
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	p, code := e.loadFiles(fs, files, "")
	if code >= 0 {
		return code
	}
	fmt.Fprintf(e.stdout, "ok: %d profiles, %d users\n", len(p.Profiles), len(p.Users))
	return exitOK
}

// apply replaces the stored policy with the profiles files, atomically and
// conditionally on the generation it diffed against: a bad file changes
// nothing and prints every problem as file:line: field: message (exit 2);
// --dry-run prints the diff and writes nothing.
func (e *env) apply(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("profiles apply", "profiles apply -f FILE [-f FILE...] [--dry-run [--impact[=PERIOD]]] [--redis-addr ADDR] [--redis-prefix PREFIX] [--config FILE]")
	var files stringList
	fileFlags(fs, &files, true)
	var cf changeFlags
	cf.register(fs)
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	if err := cf.check(); err != nil {
		return e.badInput("profiles apply: %v", err)
	}
	// Parse before connecting: a broken file is reported even when the
	// store is down, and never reaches it.
	p, code := e.loadFiles(fs, files, "callwarden: nothing applied")
	if code >= 0 {
		return code
	}
	return e.withStore(ctx, sf, func(st store) int {
		cur, gen, err := st.Policy(ctx)
		if err != nil {
			return e.failure("read the stored policy: %v", err)
		}
		lines := enforce.FormatDiff(enforce.DiffPolicies(cur, p))
		for _, l := range lines {
			fmt.Fprintln(e.stdout, l)
		}
		if len(lines) == 0 {
			fmt.Fprintf(e.stdout, "no changes (generation %d)\n", gen)
			return exitOK
		}
		if cf.dryRun {
			if cf.impact.period > 0 {
				if code := e.impactOfPolicy(ctx, st, cur, gen, p, cf.impact.period); code != exitOK {
					return code
				}
			}
			fmt.Fprintf(e.stdout, "dry run: nothing written (store at generation %d)\n", gen)
			return exitOK
		}
		// Compare-and-set on exactly the generation the diff was computed on,
		// 0 included: two applies to an empty store cannot both land.
		newGen, diff, err := st.ApplyPolicy(ctx, p, enforce.IfGeneration(gen))
		if err != nil {
			if errors.Is(err, enforce.ErrConflict) {
				return e.failure("the stored policy changed while applying (now generation %d); nothing applied, run again to see the new diff", newGen)
			}
			return e.failure("apply: %v", err)
		}
		e.auditCLI(ctx, st, "policy", fmt.Sprintf("profiles apply %s: generation %d -> %d: %s",
			strings.Join(files, " "), gen, newGen, strings.Join(enforce.FormatDiff(diff), ", ")))
		fmt.Fprintf(e.stdout, "applied: generation %d\n", newGen)
		return exitOK
	})
}

// impactOfPolicy prints the impact of replacing cur (the stored policy,
// at generation gen) by next.
func (e *env) impactOfPolicy(ctx context.Context, st store, cur enforce.Policy, gen uint64, next enforce.Policy, period time.Duration) int {
	curSnap, err := enforce.NewSnapshot(cur, gen)
	if err != nil {
		return e.failure("the stored policy (generation %d) is invalid: %s", gen, oneLine(err))
	}
	nextSnap, err := enforce.NewSnapshot(next, gen+1)
	if err != nil {
		return e.badInput("%s", oneLine(err))
	}
	return e.printImpact(ctx, st, curSnap, nextSnap, period)
}

// export prints the stored policy as a profiles file, which `profiles
// apply` takes back unchanged.
func (e *env) export(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("profiles export", "profiles export [--redis-addr ADDR] [--redis-prefix PREFIX] [--config FILE]")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	return e.withStore(ctx, sf, func(st store) int {
		p, gen, err := st.Policy(ctx)
		if err != nil {
			return e.failure("read the stored policy: %v", err)
		}
		out, err := config.MarshalProfiles(p)
		if err != nil {
			return e.failure("%v", err)
		}
		fmt.Fprintf(e.stdout, "# exported from generation %d\n", gen)
		if _, err := e.stdout.Write(out); err != nil {
			return e.failure("write: %v", err)
		}
		return exitOK
	})
}
