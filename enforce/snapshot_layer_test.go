package enforce

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestLayeredIndexMatchesAPlainMap drives a layered index through enough
// random changes to merge its delta many times, checking every version
// against a plain map and that older versions never change.
func TestLayeredIndexMatchesAPlainMap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	ref := map[string]string{}
	for i := range 3000 {
		ref["k"+strconv.Itoa(i)] = "v" + strconv.Itoa(i)
	}
	l := newLayered(clone(ref))
	type version struct {
		l   layered[string]
		ref map[string]string
	}
	var old []version
	merges := 0
	for step := range 400 {
		changes := map[string]string{}
		for range 1 + rnd.IntN(20) {
			k := "k" + strconv.Itoa(rnd.IntN(4000))
			if rnd.IntN(3) == 0 {
				changes[k] = "" // remove (possibly absent)
			} else {
				changes[k] = "s" + strconv.Itoa(step)
			}
		}
		next := l.with(changes)
		if len(next.delta) == 0 && len(l.delta) > 0 {
			merges++
		}
		nref := clone(ref)
		for k, v := range changes {
			if v == "" {
				delete(nref, k)
			} else {
				nref[k] = v
			}
		}
		check(t, step, next, nref)
		if step%50 == 0 {
			old = append(old, version{l, ref})
		}
		l, ref = next, nref
	}
	for i, v := range old {
		check(t, -i, v.l, v.ref)
	}
	if merges == 0 {
		t.Fatal("the delta was never merged: the test no longer covers merging")
	}
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func check(t *testing.T, step int, l layered[string], ref map[string]string) {
	t.Helper()
	if l.n != len(ref) {
		t.Fatalf("step %d: n = %d, want %d", step, l.n, len(ref))
	}
	seen := 0
	l.each(func(k, v string) bool {
		seen++
		if ref[k] != v {
			t.Fatalf("step %d: each gives %s=%q, want %q", step, k, v, ref[k])
		}
		return true
	})
	if seen != len(ref) {
		t.Fatalf("step %d: each visits %d entries, want %d", step, seen, len(ref))
	}
	for i := range 4000 {
		k := "k" + strconv.Itoa(i)
		v, ok := l.get(k)
		rv, rok := ref[k]
		if v != rv || ok != rok {
			t.Fatalf("step %d: get(%s) = %q,%v, want %q,%v", step, k, v, ok, rv, rok)
		}
	}
}
