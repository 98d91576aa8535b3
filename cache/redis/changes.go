package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/cache/internal/wire"
	"github.com/callwarden/callwarden/enforce"
)

var (
	_ enforce.ChangeSource = (*Store)(nil)
	_ enforce.PatchStore   = (*Store)(nil)
)

// changesScript reads, atomically, what changed since a generation: the
// change log entries of the generations after it, the union of the names
// they list, and those entries' current content. It answers "gap" when the
// log cannot do it (another epoch, a generation gone backwards, a trimmed
// or missing entry, a "full" entry, too many names): the caller reloads
// everything. It writes nothing.
//
// KEYS: schema, gen, epoch, changelog, profiles, users, protected.
// ARGV: since, since+1 (as decimal strings: Lua numbers print large
// integers in exponent form), the epoch of since, the most names to fetch.
//
// Reply: {schema, gen, epoch, "same"|"gap"} or {schema, gen, epoch,
// "delta", profile names, profile values, user names, user values,
// protected changed ("1"/"0"), protected value}.
const changesScript = `
local schema = redis.call('GET', KEYS[1]) or ''
local gen = redis.call('GET', KEYS[2]) or '0'
local epoch = redis.call('GET', KEYS[3]) or ''
local g = tonumber(gen)
local since = tonumber(ARGV[1])
if g == nil or epoch ~= ARGV[3] or g < since then
  return {schema, gen, epoch, 'gap'}
end
if g == since then
  return {schema, gen, epoch, 'same'}
end
local entries = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[2], gen)
if #entries ~= g - since then
  return {schema, gen, epoch, 'gap'}
end
local maxNames = tonumber(ARGV[4])
local pset, uset, plist, ulist, prot = {}, {}, {}, {}, '0'
for _, raw in ipairs(entries) do
  local ok, e = pcall(cjson.decode, raw)
  if not ok or type(e) ~= 'table' or e.full then
    return {schema, gen, epoch, 'gap'}
  end
  if e.protected then prot = '1' end
  if type(e.profiles) == 'table' then
    for _, n in ipairs(e.profiles) do
      if not pset[n] then pset[n] = true; plist[#plist + 1] = n end
    end
  end
  if type(e.users) == 'table' then
    for _, n in ipairs(e.users) do
      if not uset[n] then uset[n] = true; ulist[#ulist + 1] = n end
    end
  end
  if #plist + #ulist > maxNames then
    return {schema, gen, epoch, 'gap'}
  end
end
local pvals, uvals = {}, {}
if #plist > 0 then pvals = redis.call('HMGET', KEYS[5], unpack(plist)) end
if #ulist > 0 then uvals = redis.call('HMGET', KEYS[6], unpack(ulist)) end
local protv = ''
if prot == '1' then protv = redis.call('GET', KEYS[7]) or '' end
return {schema, gen, epoch, 'delta', plist, pvals, ulist, uvals, prot, protv}
`

// PolicyVersion implements enforce.ChangeSource: Policy plus the epoch, in
// the same MULTI/EXEC.
func (r *Store) PolicyVersion(ctx context.Context) (enforce.Policy, enforce.Version, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	var (
		cmds  *policyCmds
		epoch *redis.StringCmd
	)
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cmds = r.queuePolicyRead(p)
		epoch = p.Get(ctx, r.Key(KeyEpoch))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return enforce.Policy{}, enforce.Version{}, r.wrap("read policy", err)
	}
	p, gen, err := cmds.decode(r)
	if err != nil {
		return enforce.Policy{}, enforce.Version{}, err
	}
	e, err := epoch.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return enforce.Policy{}, enforce.Version{}, r.wrap("read epoch", err)
	}
	return p, enforce.Version{Epoch: e, Gen: gen}, nil
}

// Changes implements enforce.ChangeSource with one read-only script call
// (changesScript). Errors: enforce.ErrChangelogGap, enforce.ErrUnavailable,
// enforce.ErrSchemaVersion, enforce.ErrCorrupt.
func (r *Store) Changes(ctx context.Context, since enforce.Version) (enforce.PolicyPatch, enforce.Version, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	keys := []string{r.Key(KeySchema), r.Key(KeyGeneration), r.Key(KeyEpoch), r.Key(KeyChangelog),
		r.Key(KeyProfiles), r.Key(KeyUsers), r.Key(KeyProtected)}
	res, err := r.changes.Run(ctx, r.c, keys, strconv.FormatUint(since.Gen, 10), strconv.FormatUint(since.Gen+1, 10),
		since.Epoch, wire.ChangelogMaxNames).Slice()
	if err != nil {
		return enforce.PolicyPatch{}, enforce.Version{}, r.wrap("read changes", err)
	}
	if len(res) < 4 {
		return enforce.PolicyPatch{}, enforce.Version{}, fmt.Errorf("%w: changes script replied %d values", enforce.ErrCorrupt, len(res))
	}
	str := func(v any) string { s, _ := v.(string); return s }
	if err := checkSchema(str(res[0])); err != nil {
		return enforce.PolicyPatch{}, enforce.Version{}, err
	}
	gen, err := parseGeneration(str(res[1]))
	if err != nil {
		return enforce.PolicyPatch{}, enforce.Version{}, err
	}
	v := enforce.Version{Epoch: str(res[2]), Gen: gen}
	switch str(res[3]) {
	case "same":
		return enforce.PolicyPatch{}, v, nil
	case "gap":
		return enforce.PolicyPatch{}, v, fmt.Errorf("changes since generation %d (store at %d): %w", since.Gen, gen, enforce.ErrChangelogGap)
	case "delta":
	default:
		return enforce.PolicyPatch{}, enforce.Version{}, fmt.Errorf("%w: changes script replied %q", enforce.ErrCorrupt, str(res[3]))
	}
	if len(res) != 10 {
		return enforce.PolicyPatch{}, enforce.Version{}, fmt.Errorf("%w: changes script replied %d values", enforce.ErrCorrupt, len(res))
	}
	var patch enforce.PolicyPatch
	profiles, removedP, err := namedValues(res[4], res[5])
	if err != nil {
		return enforce.PolicyPatch{}, enforce.Version{}, err
	}
	users, removedU, err := namedValues(res[6], res[7])
	if err != nil {
		return enforce.PolicyPatch{}, enforce.Version{}, err
	}
	prot := ""
	if str(res[8]) == "1" {
		prot = str(res[9])
	}
	dec, ignored, err := wire.DecodePolicy(profiles, users, prot)
	if err != nil {
		return enforce.PolicyPatch{}, enforce.Version{}, err
	}
	r.reportIgnored("changes", ignored)
	patch.Profiles, patch.Users = dec.Profiles, dec.Users
	patch.RemovedProfiles, patch.RemovedUsers = removedP, removedU
	if str(res[8]) == "1" {
		patch.Protected = &dec.Protected
	}
	return patch, v, nil
}

// namedValues pairs names with HMGET values: present ones in a map, absent
// ones (removed entries) in a list.
func namedValues(names, values any) (map[string]string, []string, error) {
	ns, _ := names.([]any)
	vs, _ := values.([]any)
	if len(ns) != len(vs) {
		return nil, nil, fmt.Errorf("%w: changes script gave %d names and %d values", enforce.ErrCorrupt, len(ns), len(vs))
	}
	present := make(map[string]string, len(ns))
	var removed []string
	for i, n := range ns {
		name, _ := n.(string)
		if v, ok := vs[i].(string); ok {
			present[name] = v
		} else {
			removed = append(removed, name)
		}
	}
	return present, removed, nil
}

// queueChangelog logs the change that makes generation gen, trims the log
// and gives the store an epoch if it has none. Part of an apply's
// MULTI/EXEC.
func (r *Store) queueChangelog(ctx context.Context, p redis.Pipeliner, gen uint64, d enforce.PolicyDiff) {
	p.SetNX(ctx, r.Key(KeyEpoch), wire.NewEpoch(), 0)
	p.ZAdd(ctx, r.Key(KeyChangelog), redis.Z{Score: float64(gen), Member: wire.NewChangeEntry(gen, d).Encode()})
	if gen > wire.ChangelogKeep {
		p.ZRemRangeByScore(ctx, r.Key(KeyChangelog), "-inf", strconv.FormatUint(gen-wire.ChangelogKeep, 10))
	}
}

// ApplyPatch implements enforce.PatchStore: it normalises p's entries through the
// wire form, validates the result with base.Patch, then, under WATCH of the
// schema, generation and epoch keys, checks that the store is still at
// base's generation and origin and writes the entries that change, the new
// generation and its change log entry in one MULTI/EXEC, and publishes
// the generation. With Options.WaitReplicas it is acknowledged once the
// replicas have it, as ApplyPolicy. Errors: ErrNotReplicated,
// enforce.ErrInvalidPolicy, enforce.ErrConflict (with the
// store's generation), enforce.ErrUnavailable, enforce.ErrSchemaVersion,
// enforce.ErrCorrupt.
func (r *Store) ApplyPatch(ctx context.Context, base *enforce.Snapshot, p enforce.PolicyPatch) (uint64, enforce.PolicyDiff, error) {
	enc, diff, eff, err := wire.PreparePatch(base, p)
	if err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	var (
		gen         uint64
		unconfirmed error
	)
	err = r.c.Watch(ctx, func(tx *redis.Tx) error {
		vals, err := tx.MGet(ctx, r.Key(KeySchema), r.Key(KeyGeneration), r.Key(KeyEpoch)).Result()
		if err != nil {
			return r.wrap("read generation", err)
		}
		schema, _ := vals[0].(string)
		if err := checkSchema(schema); err != nil {
			return err
		}
		g, _ := vals[1].(string)
		if gen, err = parseGeneration(g); err != nil {
			return err
		}
		epoch, _ := vals[2].(string)
		if gen != base.Generation() || epoch != base.Origin() {
			return fmt.Errorf("change based on generation %d, store is at %d: %w", base.Generation(), gen, enforce.ErrConflict)
		}
		if diff.Empty() {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(pl redis.Pipeliner) error {
			pl.Set(ctx, r.Key(KeySchema), SchemaVersion, 0)
			r.queueHashChanges(ctx, pl, KeyProfiles, enc.Profiles, nil, namesOfProfiles(eff.Profiles), eff.RemovedProfiles)
			r.queueHashChanges(ctx, pl, KeyUsers, enc.Users, nil, idsOfUsers(eff.Users), eff.RemovedUsers)
			if eff.Protected != nil {
				pl.Set(ctx, r.Key(KeyProtected), enc.Protected, 0)
			}
			pl.Incr(ctx, r.Key(KeyGeneration))
			r.queueChangelog(ctx, pl, gen+1, diff)
			return nil
		})
		if err != nil {
			return err
		}
		gen++
		unconfirmed = r.confirm(ctx, tx)
		return nil
	}, r.Key(KeySchema), r.Key(KeyGeneration), r.Key(KeyEpoch))
	switch {
	case errors.Is(err, redis.TxFailedErr):
		return gen, enforce.PolicyDiff{}, fmt.Errorf("change based on generation %d: another apply committed first: %w", base.Generation(), enforce.ErrConflict)
	case classified(err):
		return gen, enforce.PolicyDiff{}, err
	case err != nil:
		return 0, enforce.PolicyDiff{}, r.wrap("apply patch", err)
	}
	return r.applied(ctx, gen, diff, unconfirmed)
}

// applied answers an apply that committed generation gen with diff,
// announcing gen when it changed something. unconfirmed is the error of
// the wait for replicas (confirm): the generation is then on the primary
// and published (daemons that read it enforce it), but not acknowledged.
func (r *Store) applied(ctx context.Context, gen uint64, diff enforce.PolicyDiff, unconfirmed error) (uint64, enforce.PolicyDiff, error) {
	if !diff.Empty() {
		r.publish(ctx, gen)
	}
	if unconfirmed != nil {
		return gen, diff, fmt.Errorf("generation %d: %w", gen, unconfirmed)
	}
	return gen, diff, nil
}

// publish announces generation gen; a failure is only logged (Loaders'
// periodic check catches up).
func (r *Store) publish(ctx context.Context, gen uint64) {
	if err := r.c.Publish(ctx, r.Key(ChannelChanges), strconv.FormatUint(gen, 10)).Err(); err != nil {
		r.log.Warn("publish change notification", zap.Uint64("generation", gen), zap.Error(err))
	}
}

func namesOfProfiles(ps []enforce.Profile) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func idsOfUsers(us []enforce.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}
