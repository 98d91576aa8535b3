package enforce

import "slices"

// symtab interns the resource names of one dimension (queues, teams,
// agents, sites) to small integers, from 1, so that a compiled scope is a
// short sorted list of ints that Decide scans without chasing string data:
// at 100k users, comparing strings costs a cache miss per element. 0 is no
// name: the empty string, or a name no user or grant mentions, which is
// therefore in no scope. A symbol is never removed (a patch that drops the
// last use of a name keeps its number); a full compile starts afresh.
type symtab struct {
	ids layered[int32]
	n   int32
}

// lookup returns the number of name, 0 when it has none.
func (t *symtab) lookup(name string) int32 {
	if name == "" {
		return 0
	}
	id, _ := t.ids.get(name)
	return id
}

// symbols is one symtab per dimension.
type symbols [numDimensions]symtab

// interner numbers the names met while compiling a snapshot: on top of the
// symbols of a base snapshot for Snapshot.Patch (only the new names are
// copied), or from scratch for NewSnapshot.
type interner struct {
	base  *symbols
	added [numDimensions]map[string]int32
	n     [numDimensions]int32
}

func newInterner(base *symbols) *interner {
	in := &interner{base: base}
	if base != nil {
		for d := range base {
			in.n[d] = base[d].n
		}
	}
	return in
}

// intern returns the number of name in dimension d, numbering it if new.
func (in *interner) intern(d Dimension, name string) int32 {
	if in.base != nil {
		if id := in.base[d].lookup(name); id != 0 {
			return id
		}
	}
	if id, ok := in.added[d][name]; ok {
		return id
	}
	if in.added[d] == nil {
		in.added[d] = make(map[string]int32)
	}
	in.n[d]++
	in.added[d][name] = in.n[d]
	return in.n[d]
}

// internLists appends, for each dimension, the sorted numbers of lists[d]
// to ids and returns ids with end: ids[end[d-1]:end[d]] are dimension d's.
func (in *interner) internLists(ids []int32, lists *[numDimensions][]string) ([]int32, [numDimensions]int32) {
	var end [numDimensions]int32
	for d := range lists {
		start := len(ids)
		for _, name := range lists[d] {
			ids = append(ids, in.intern(Dimension(d), name))
		}
		slices.Sort(ids[start:])
		end[d] = int32(len(ids))
	}
	return ids, end
}

// symbols returns the tables with every name interned so far.
func (in *interner) symbols() symbols {
	var out symbols
	for d := range out {
		if in.base == nil {
			if in.added[d] == nil {
				in.added[d] = map[string]int32{}
			}
			out[d] = symtab{ids: newLayered(in.added[d]), n: in.n[d]}
			continue
		}
		out[d] = symtab{ids: in.base[d].ids.with(in.added[d]), n: in.n[d]}
	}
	return out
}

// idList is a compiled scope: per dimension, the sorted numbers of its
// names, one backing slice for all four.
type idList struct {
	end [numDimensions]int32
	ids []int32
}

// of returns dimension d's numbers.
func (l *idList) of(d Dimension) []int32 {
	start := int32(0)
	if d > 0 {
		start = l.end[d-1]
	}
	return l.ids[start:l.end[d]]
}

// hasID reports whether the sorted list holds id (never 0).
func hasID(ids []int32, id int32) bool {
	if len(ids) <= 16 {
		for _, x := range ids {
			if x == id {
				return true
			}
		}
		return false
	}
	_, ok := slices.BinarySearch(ids, id)
	return ok
}
