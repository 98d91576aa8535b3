package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// SaveRecording implements enforce.RecordingStore: the recording's JSON
// and the target's index of active recordings change together (WATCH on
// the recording key, then MULTI/EXEC). Errors: enforce.ErrUnavailable.
func (r *Store) SaveRecording(ctx context.Context, rec enforce.Recording) error {
	if rec.ID == "" {
		return errors.New("save recording: empty id")
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("save recording %s: %w", rec.ID, err)
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	key := r.Key(KeyRecordingPrefix + rec.ID)
	err = r.watchRetry(ctx, key, func(tx *redis.Tx) error {
		var old *enforce.Recording
		b, err := tx.Get(ctx, key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			var o enforce.Recording
			if json.Unmarshal(b, &o) == nil {
				old = &o
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, raw, 0)
			if old != nil && old.Target != rec.Target {
				p.ZRem(ctx, r.Key(KeyActivePrefix+old.Target), rec.ID)
			}
			if old != nil {
				r.unindex(ctx, p, old)
			}
			if member, ok := enforce.CatalogueKey(&rec); ok {
				for _, ix := range r.indexKeys(&rec) {
					p.ZAdd(ctx, ix, redis.Z{Member: member})
				}
			}
			if rec.State == enforce.RecordingStopped {
				p.ZRem(ctx, r.Key(KeyActivePrefix+rec.Target), rec.ID)
				p.ZRem(ctx, r.Key(KeyRecordingsLive), rec.ID)
			} else {
				z := redis.Z{Score: float64(rec.StartedAt.UnixMilli()), Member: rec.ID}
				p.ZAdd(ctx, r.Key(KeyActivePrefix+rec.Target), z)
				p.ZAdd(ctx, r.Key(KeyRecordingsLive), z)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return r.wrap("save recording "+rec.ID, err)
	}
	return nil
}

// watchRetry runs fn in a WATCH of key, again (up to applyAttempts times)
// while another client changed key before fn's transaction committed.
func (r *Store) watchRetry(ctx context.Context, key string, fn func(*redis.Tx) error) error {
	var err error
	for range applyAttempts {
		if err = r.c.Watch(ctx, fn, key); !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return err
}

// indexKeys are the catalogue indexes rec belongs to.
func (r *Store) indexKeys(rec *enforce.Recording) []string {
	keys := []string{r.Key(KeyCatalogue)}
	if rec.Target != "" {
		keys = append(keys, r.Key(KeyCatalogueAgent+rec.Target))
	}
	if rec.Queue != "" {
		keys = append(keys, r.Key(KeyCatalogueQueue+rec.Queue))
	}
	return keys
}

// indexKey is the key of the catalogue index ix.
func (r *Store) indexKey(ix enforce.RecordingIndex) string {
	switch {
	case ix.Agent != "":
		return r.Key(KeyCatalogueAgent + ix.Agent)
	case ix.Queue != "":
		return r.Key(KeyCatalogueQueue + ix.Queue)
	}
	return r.Key(KeyCatalogue)
}

// unindex queues the removal of old from its catalogue indexes on p.
func (r *Store) unindex(ctx context.Context, p redis.Pipeliner, old *enforce.Recording) {
	if key, ok := enforce.CatalogueKey(old); ok {
		for _, ix := range r.indexKeys(old) {
			p.ZRem(ctx, ix, key)
		}
	}
}

// ListRecordings implements enforce.RecordingCatalogue: one ZRANGE BYLEX
// of the index, then the recordings' JSON in one MGET. A member whose
// recording was deleted since is skipped. Errors: enforce.ErrUnavailable,
// enforce.ErrCorrupt.
func (r *Store) ListRecordings(ctx context.Context, q enforce.RecordingQuery) ([]enforce.Recording, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list recordings: limit %d, want a positive one", q.Limit)
	}
	// Members are "<13 digits>:<id>": every member of a recording started
	// at or after t is >= "<t>", every one before t is < "<t>".
	lo, hi := "-", "+"
	if !q.From.IsZero() {
		lo = "[" + enforce.CatalogueBound(q.From)
	}
	if !q.To.IsZero() {
		hi = "(" + enforce.CatalogueBound(q.To)
	}
	if q.After != "" {
		if q.Oldest && (lo == "-" || q.After >= lo[1:]) {
			lo = "(" + q.After
		}
		if !q.Oldest && (hi == "+" || q.After < hi[1:]) {
			hi = "(" + q.After
		}
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	args := redis.ZRangeArgs{Key: r.indexKey(q.Index), Start: lo, Stop: hi, ByLex: true, Count: int64(q.Limit)}
	if !q.Oldest {
		// With REV, ZRANGE takes the upper bound first.
		args.Start, args.Stop, args.Rev = hi, lo, true
	}
	members, err := r.c.ZRangeArgs(ctx, args).Result()
	if err != nil {
		return nil, r.wrap("list recordings of "+q.Index.String(), err)
	}
	if len(members) == 0 {
		return nil, nil
	}
	keys := make([]string, len(members))
	for i, m := range members {
		_, id, _ := strings.Cut(m, ":")
		keys[i] = r.Key(KeyRecordingPrefix + id)
	}
	raws, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, r.wrap("read recordings of "+q.Index.String(), err)
	}
	out := make([]enforce.Recording, 0, len(raws))
	for i, raw := range raws {
		s, ok := raw.(string)
		if !ok {
			continue // deleted since the index was read
		}
		var rec enforce.Recording
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return nil, fmt.Errorf("%w: recording %s: %w", enforce.ErrCorrupt, keys[i], err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// DeleteRecording implements enforce.RecordingCatalogue: the recording's
// JSON and its entries in the catalogue and active indexes go together
// (WATCH, MULTI/EXEC). Errors: enforce.ErrNotFound, enforce.ErrUnavailable.
func (r *Store) DeleteRecording(ctx context.Context, id string) error {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	key := r.Key(KeyRecordingPrefix + id)
	err := r.watchRetry(ctx, key, func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if err != nil {
			return err
		}
		var old enforce.Recording
		corrupt := json.Unmarshal(b, &old) != nil
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			if !corrupt {
				r.unindex(ctx, p, &old)
				p.ZRem(ctx, r.Key(KeyActivePrefix+old.Target), id)
			}
			p.ZRem(ctx, r.Key(KeyRecordingsLive), id)
			return nil
		})
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("recording %s: %w", id, enforce.ErrNotFound)
	case err != nil:
		return r.wrap("delete recording "+id, err)
	}
	return nil
}

// Recording implements enforce.RecordingStore. Errors: enforce.ErrNotFound,
// enforce.ErrUnavailable, enforce.ErrCorrupt.
func (r *Store) Recording(ctx context.Context, id string) (enforce.Recording, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	return r.recording(ctx, id)
}

func (r *Store) recording(ctx context.Context, id string) (enforce.Recording, error) {
	b, err := r.c.Get(ctx, r.Key(KeyRecordingPrefix+id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return enforce.Recording{}, fmt.Errorf("recording %s: %w", id, enforce.ErrNotFound)
	}
	if err != nil {
		return enforce.Recording{}, r.wrap("get recording "+id, err)
	}
	var rec enforce.Recording
	if err := json.Unmarshal(b, &rec); err != nil {
		return enforce.Recording{}, fmt.Errorf("%w: recording %s: %w", enforce.ErrCorrupt, id, err)
	}
	return rec, nil
}

// ActiveRecording implements enforce.RecordingStore: the most recently
// started recording of target that is active or paused. Errors:
// enforce.ErrNotFound, enforce.ErrUnavailable.
func (r *Store) ActiveRecording(ctx context.Context, target string) (enforce.Recording, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	ids, err := r.c.ZRevRange(ctx, r.Key(KeyActivePrefix+target), 0, 9).Result()
	if err != nil {
		return enforce.Recording{}, r.wrap("active recording of "+target, err)
	}
	for _, id := range ids {
		rec, err := r.recording(ctx, id)
		if errors.Is(err, enforce.ErrNotFound) {
			continue // saved again or removed since the index was read
		}
		if err != nil {
			return enforce.Recording{}, err
		}
		if rec.Target == target && rec.State != enforce.RecordingStopped {
			return rec, nil
		}
	}
	return enforce.Recording{}, fmt.Errorf("active recording of %q: %w", target, enforce.ErrNotFound)
}

// Audit implements enforce.Auditor: it appends r to the stream, chained to
// the previous record, in one round trip when the chain head it last saw is
// still the head (AuditBatch of one record), trimming by Audit.MaxLen and
// Audit.MaxAge. Errors: enforce.ErrUnavailable.
func (r *Store) Audit(ctx context.Context, rec enforce.AuditRecord) error {
	_, err := r.AuditBatch(ctx, []enforce.AuditRecord{rec})
	return err
}

// appendBatchScript appends records whose hashes the caller computed,
// chained from the head the caller expects: if the head moved (another
// daemon appended), it writes nothing and returns the current head so the
// caller re-chains and retries. The head (KEYS[2], the hash of the last
// record appended) is kept apart from the stream so that deleting the last
// entry is detected when the next one is appended. Hashing is done by the
// caller (Redis' Lua has SHA-1 only; a SHA-256 in Lua cost about 0.2 ms of
// Redis' single thread per record); the head compare-and-set keeps one
// chain across daemons, and the verifier recomputes every hash.
//
// When the head moved, the script also looks up the record the caller
// expected as the head, by its id (one XRANGE): if it is gone, and not
// because the stream was trimmed past it, records were lost (a failover
// of the primary before they were replicated, or a removal) and the
// reply says so, so that the caller chains a gap record
// (enforce.AuditGapAction) rather than silently carrying on from an
// older head.
//
// KEYS: stream, head. ARGV: expected head, its id ("": unknown), maxlen
// (0: none), minid ("": none), then rec, hash pairs. Returns {appended,
// head, id of the head record, lost (0 or 1)}.
const appendBatchScript = `
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am) or 0, tonumber(as) or 0, tonumber(bm) or 0, tonumber(bs) or 0
  return am < bm or (am == bm and as < bs)
end
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then
  local lost = 0
  if ARGV[2] ~= '' then
    local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
    if #e == 0 then
      local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
      if #first == 0 then
        if head == '' then lost = 1 end
      elseif not older(ARGV[2], first[1][1]) then
        lost = 1
      end
    else
      local h = ''
      local f = e[1][2]
      for i = 1, #f, 2 do if f[i] == 'hash' then h = f[i + 1] end end
      if h ~= ARGV[1] then lost = 1 end
    end
  end
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local lastid = ''
  if #last > 0 then lastid = last[1][1] end
  return {0, head, lastid, lost}
end
local maxlen = tonumber(ARGV[3])
local prev, n, id = head, 0, ''
for i = 5, #ARGV, 2 do
  if maxlen > 0 then
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'prev', prev, 'hash', ARGV[i + 1], 'rec', ARGV[i])
  else
    id = redis.call('XADD', KEYS[1], '*', 'prev', prev, 'hash', ARGV[i + 1], 'rec', ARGV[i])
  end
  prev, n = ARGV[i + 1], n + 1
end
if ARGV[4] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[4]) end
redis.call('SET', KEYS[2], prev)
return {n, prev, id, 0}
`

// lostRaceBackoff is the base of the jittered pause AuditBatch takes after
// another daemon moved the head, so that two busy writers take turns
// instead of one starving the other.
const lostRaceBackoff = 200 * time.Microsecond

// AuditBatch implements enforce.BatchAuditor: it chains recs in Go from the head
// it last saw and appends them in one script call (appendBatchScript),
// which checks that head first; when another writer moved it, the batch
// is re-chained from the new head and sent again. The resulting chain is
// the one as many Audit calls would make. When the record this store last
// appended (or last saw as the head) is no longer in the trail, a gap
// record (enforce.AuditGapAction) naming it is chained before recs. With
// Options.WaitReplicas, the batch is acknowledged once the replicas have
// it; otherwise AuditBatch returns len(recs) (the records are on the
// primary) with ErrNotReplicated. Errors: enforce.ErrUnavailable.
func (r *Store) AuditBatch(ctx context.Context, recs []enforce.AuditRecord) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	raws := make([][]byte, len(recs))
	for i, rec := range recs {
		raw, err := enforce.CanonicalAudit(rec)
		if err != nil {
			return 0, err
		}
		raws[i] = raw
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	minID := ""
	if r.opts.Audit.MaxAge > 0 {
		minID = strconv.FormatInt(r.opts.Audit.Now().Add(-r.opts.Audit.MaxAge).UnixMilli(), 10)
	}
	keys := []string{r.Key(KeyAudit), r.Key(KeyAuditHead)}
	r.headMu.Lock()
	defer r.headMu.Unlock()
	// gap is the one gap record chained before raws, once a loss is seen.
	var gap []byte
	for attempt := 1; ; attempt++ {
		batch := raws
		if gap != nil {
			batch = append([][]byte{gap}, raws...)
		}
		prev := r.head
		args := make([]any, 4, 4+2*len(batch))
		args[0], args[1], args[2], args[3] = prev, r.headID, r.opts.Audit.MaxLen, minID
		for _, raw := range batch {
			h := enforce.AuditChainHash(prev, raw)
			args = append(args, raw, h)
			prev = h
		}
		var res []any
		written, err := r.confirmedWrite(ctx, r.Key(KeyAuditHead), func(c redis.Scripter) (err error) {
			res, err = r.appendBatch.Run(ctx, c, keys, args...).Slice()
			if err == nil && len(res) != 4 {
				return fmt.Errorf("audit append: unexpected script reply %v", res)
			}
			return err
		})
		if !written {
			return 0, r.wrap("audit append", err)
		}
		n, _ := res[0].(int64)
		head, _ := res[1].(string)
		id, _ := res[2].(string)
		lost, _ := res[3].(int64)
		if int(n) == len(batch) {
			r.head, r.headID = head, id
			if err != nil {
				return len(recs), fmt.Errorf("audit append: %w", err)
			}
			return len(recs), nil
		}
		if lost == 1 && gap == nil {
			if gap, err = r.gapRecord(head, id); err != nil {
				return 0, err
			}
		}
		r.head, r.headID = head, id
		// Lost the race: retry from the new head after a jittered pause,
		// until the call's deadline.
		pause := time.NewTimer(time.Duration(rand.Int64N(int64(min(attempt, 16)) * int64(lostRaceBackoff))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return 0, fmt.Errorf("audit append: the chain head moved %d times in a row: %w", attempt, errors.Join(ctx.Err(), enforce.ErrUnavailable))
		case <-pause.C:
		}
	}
}

// gapRecord is the canonical gap record saying that the record this store
// last knew as the head (r.head, r.headID) is gone and the chain goes on
// from head (record id). It logs the loss.
func (r *Store) gapRecord(head, id string) ([]byte, error) {
	detail := fmt.Sprintf("record %s (hash %s), which this writer appended or saw as the head, is no longer in the trail; "+
		"the chain continues from record %s (hash %s): the records in between were lost (a failover of the Redis primary before they were replicated, or a removal)",
		r.headID, r.head, id, head)
	r.log.Error("audit trail gap: records this daemon appended or saw are gone; chaining a gap record",
		zap.String("missing_id", r.headID), zap.String("missing_hash", r.head), zap.String("continues_from", id))
	return enforce.CanonicalAudit(enforce.AuditRecord{Time: r.opts.Audit.Now(), Source: "audit", Action: enforce.AuditGapAction,
		Decision: "gap", Reason: "records_lost", Detail: detail})
}

// auditPage is the number of entries read per XRANGE.
const auditPage = 512

// ReadAudit implements enforce.AuditReader: records matching f, oldest
// first; with f.Limit > 0 the most recent Limit of them. Since is
// inclusive, Until exclusive, both on the record's own time. Record times
// are the deciders' clocks, not the stream ids' (Redis's clock), so the
// stream is scanned whole (newest first, stopping at Limit, when a limit
// is given); the stream is bounded by Audit.MaxLen and Audit.MaxAge.
// Errors: enforce.ErrUnavailable, enforce.ErrCorrupt.
func (r *Store) ReadAudit(ctx context.Context, f enforce.AuditFilter) ([]enforce.AuditRecord, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	var out []enforce.AuditRecord
	newestFirst := f.Limit > 0
	err := r.scanAudit(ctx, "-", "+", newestFirst, func(e enforce.AuditEntry) (bool, error) {
		var rec enforce.AuditRecord
		if err := json.Unmarshal(e.Raw, &rec); err != nil {
			return false, fmt.Errorf("%w: audit record %s: %w", enforce.ErrCorrupt, e.ID, err)
		}
		if f.Match(&rec) {
			out = append(out, rec)
		}
		return f.Limit <= 0 || len(out) < f.Limit, nil
	})
	if err != nil {
		return nil, err
	}
	if newestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

// VerifyAudit implements enforce.AuditLog, reading the stream page by page from
// its first retained entry. Errors: enforce.ErrUnavailable.
// The head is read first, so records appended during the walk (the head
// then names one of them, or one before them) never look like a removal.
func (r *Store) VerifyAudit(ctx context.Context, opts ...enforce.VerifyOption) (enforce.VerifyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, max(r.opts.CallTimeout, time.Minute))
	defer cancel()
	head, err := r.c.Get(ctx, r.Key(KeyAuditHead)).Result()
	if errors.Is(err, redis.Nil) {
		head, err = enforce.AuditGenesis, nil
	}
	if err != nil {
		return enforce.VerifyResult{}, r.wrap("audit head", err)
	}
	v := enforce.NewAuditChainVerifier(head, opts)
	err = r.scanAudit(ctx, "-", "+", false, func(e enforce.AuditEntry) (bool, error) {
		return v.Next(e), nil
	})
	if err != nil {
		return v.Partial(), err
	}
	res := v.Finish()
	res.Failover, err = r.promotion(ctx)
	return res, err
}

// noReplID is the replication id of a primary that never took over from
// another one (INFO replication, master_replid2).
const noReplID = "0000000000000000000000000000000000000000"

// promotion says whether the primary that holds the audit stream took
// over from another one, read from its INFO replication: master_replid2
// is then the former primary's replication id, and second_repl_offset
// how far this one had followed it. It returns "" for a primary that
// never took over. Errors: enforce.ErrUnavailable.
func (r *Store) promotion(ctx context.Context) (string, error) {
	var node redis.Cmdable = r.c
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, r.Key(KeyAudit))
		if err != nil {
			return "", r.wrap("audit primary", err)
		}
		node = m
	}
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return "", r.wrap("audit primary replication info", err)
	}
	fields := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	id2 := fields["master_replid2"]
	if id2 == "" || id2 == noReplID {
		return "", nil
	}
	return fmt.Sprintf("this Redis primary took over from another one (replication id %s, followed up to offset %s): "+
		"records appended to the former primary that had not reached this one are not in the trail, and only the daemon that wrote them "+
		"can tell (it chains a gap record when it next appends); with redis.wait_replicas set, no acknowledged record is among them",
		id2, fields["second_repl_offset"]), nil
}

// scanAudit walks the stream between ids lo and hi, page by page, calling
// fn until it returns false.
func (r *Store) scanAudit(ctx context.Context, lo, hi string, newestFirst bool, fn func(enforce.AuditEntry) (bool, error)) error {
	key := r.Key(KeyAudit)
	for {
		var (
			page []redis.XMessage
			err  error
		)
		if newestFirst {
			page, err = r.c.XRevRangeN(ctx, key, hi, lo, auditPage).Result()
		} else {
			page, err = r.c.XRangeN(ctx, key, lo, hi, auditPage).Result()
		}
		if err != nil {
			return r.wrap("audit read", err)
		}
		for _, m := range page {
			goOn, err := fn(auditEntry(m))
			if err != nil || !goOn {
				return err
			}
		}
		if len(page) < auditPage {
			return nil
		}
		last := page[len(page)-1].ID
		if newestFirst {
			hi = "(" + last
		} else {
			lo = "(" + last
		}
	}
}

func auditEntry(m redis.XMessage) enforce.AuditEntry {
	s := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	return enforce.AuditEntry{ID: m.ID, Prev: s("prev"), Hash: s("hash"), Raw: []byte(s("rec"))}
}
