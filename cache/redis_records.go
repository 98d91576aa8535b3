package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/enforce"
)

// SaveRecording implements enforce.RecordingStore: the recording's JSON
// and the target's index of active recordings change together (WATCH on
// the recording key, then MULTI/EXEC). Errors: enforce.ErrUnavailable.
func (r *Redis) SaveRecording(ctx context.Context, rec enforce.Recording) error {
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
	for range applyAttempts {
		err = r.c.Watch(ctx, func(tx *redis.Tx) error {
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
				if rec.State == enforce.RecordingStopped {
					p.ZRem(ctx, r.Key(KeyActivePrefix+rec.Target), rec.ID)
				} else {
					p.ZAdd(ctx, r.Key(KeyActivePrefix+rec.Target), redis.Z{Score: float64(rec.StartedAt.UnixMilli()), Member: rec.ID})
				}
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return r.wrap("save recording "+rec.ID, err)
	}
	return nil
}

// Recording implements enforce.RecordingStore. Errors: enforce.ErrNotFound,
// enforce.ErrUnavailable, ErrCorrupt.
func (r *Redis) Recording(ctx context.Context, id string) (enforce.Recording, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	return r.recording(ctx, id)
}

func (r *Redis) recording(ctx context.Context, id string) (enforce.Recording, error) {
	b, err := r.c.Get(ctx, r.Key(KeyRecordingPrefix+id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return enforce.Recording{}, fmt.Errorf("recording %s: %w", id, enforce.ErrNotFound)
	}
	if err != nil {
		return enforce.Recording{}, r.wrap("get recording "+id, err)
	}
	var rec enforce.Recording
	if err := json.Unmarshal(b, &rec); err != nil {
		return enforce.Recording{}, fmt.Errorf("%w: recording %s: %w", ErrCorrupt, id, err)
	}
	return rec, nil
}

// ActiveRecording implements enforce.RecordingStore: the most recently
// started recording of target that is active or paused. Errors:
// enforce.ErrNotFound, enforce.ErrUnavailable.
func (r *Redis) ActiveRecording(ctx context.Context, target string) (enforce.Recording, error) {
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

// appendScript appends one chained record to the audit stream atomically:
// it reads the chain head (KEYS[2], the hash of the last record appended),
// computes hash = hex(sha256(prev || rec)) and XADDs {prev, hash, rec},
// then moves the head. Redis's Lua has no SHA-256 (only SHA-1), so the
// script carries its own, on the bit library; the Go verifier recomputes
// every hash with crypto/sha256, so a wrong implementation could not go
// unnoticed. Doing it server-side means daemons appending at once never
// fork the chain and never retry.
//
// KEYS: stream, head. ARGV: rec, maxlen (0: none), minid ("": none).
// Returns {id, hash}.
const appendScript = `
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2 }

local function sha256hex(msg)
  local len = #msg
  local bits = len * 8
  msg = msg .. '\128' .. string.rep('\0', (55 - len) % 64) .. '\0\0\0\0' ..
    string.char(band(rshift(bits, 24), 255), band(rshift(bits, 16), 255), band(rshift(bits, 8), 255), band(bits, 255))
  local H = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = string.byte(msg, chunk + i * 4, chunk + i * 4 + 3)
      w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
    for i = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + K[i + 1] + w[i])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      local t2 = tobit(S0 + maj)
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
    H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
  end
  local out = {}
  for i = 1, 8 do out[i] = tohex(H[i], 8) end
  return table.concat(out)
end

local prev = redis.call('GET', KEYS[2])
if not prev then prev = '' end
local hash = sha256hex(prev .. ARGV[1])
local id
if tonumber(ARGV[2]) > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'prev', prev, 'hash', hash, 'rec', ARGV[1])
else
  id = redis.call('XADD', KEYS[1], '*', 'prev', prev, 'hash', hash, 'rec', ARGV[1])
end
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
redis.call('SET', KEYS[2], hash)
return {id, hash}
`

// Audit implements enforce.Auditor: it appends r to the stream, chained to
// the previous record by appendScript in one round trip, trimming by
// Audit.MaxLen and Audit.MaxAge. Errors: enforce.ErrUnavailable.
func (r *Redis) Audit(ctx context.Context, rec enforce.AuditRecord) error {
	raw, err := canonicalAudit(rec)
	if err != nil {
		return err
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	minID := ""
	if r.opts.Audit.MaxAge > 0 {
		minID = strconv.FormatInt(r.opts.Audit.Now().Add(-r.opts.Audit.MaxAge).UnixMilli(), 10)
	}
	res, err := r.append.Run(ctx, r.c, []string{r.Key(KeyAudit), r.Key(KeyAuditHead)},
		raw, r.opts.Audit.MaxLen, minID).Slice()
	if err != nil {
		return r.wrap("audit append", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("audit append: unexpected script reply %v", res)
	}
	return nil
}

// auditPage is the number of entries read per XRANGE.
const auditPage = 512

// ReadAudit implements enforce.AuditReader: records matching f, oldest
// first; with f.Limit > 0 the most recent Limit of them. Since is
// inclusive, Until exclusive, both on the record's own time. Record times
// are the deciders' clocks, not the stream ids' (Redis's clock), so the
// stream is scanned whole (newest first, stopping at Limit, when a limit
// is given); the stream is bounded by Audit.MaxLen and Audit.MaxAge.
// Errors: enforce.ErrUnavailable, ErrCorrupt.
func (r *Redis) ReadAudit(ctx context.Context, f enforce.AuditFilter) ([]enforce.AuditRecord, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	var out []enforce.AuditRecord
	newestFirst := f.Limit > 0
	err := r.scanAudit(ctx, "-", "+", newestFirst, func(e AuditEntry) (bool, error) {
		var rec enforce.AuditRecord
		if err := json.Unmarshal(e.Raw, &rec); err != nil {
			return false, fmt.Errorf("%w: audit record %s: %w", ErrCorrupt, e.ID, err)
		}
		if matchAudit(&f, &rec) {
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

// VerifyAudit implements AuditLog, reading the stream page by page from
// its first retained entry. Errors: enforce.ErrUnavailable.
func (r *Redis) VerifyAudit(ctx context.Context) (VerifyResult, error) {
	var v chainVerifier
	ctx, cancel := context.WithTimeout(ctx, max(r.opts.CallTimeout, time.Minute))
	defer cancel()
	err := r.scanAudit(ctx, "-", "+", false, func(e AuditEntry) (bool, error) {
		return v.next(e), nil
	})
	return v.res, err
}

// scanAudit walks the stream between ids lo and hi, page by page, calling
// fn until it returns false.
func (r *Redis) scanAudit(ctx context.Context, lo, hi string, newestFirst bool, fn func(AuditEntry) (bool, error)) error {
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

func auditEntry(m redis.XMessage) AuditEntry {
	s := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	return AuditEntry{ID: m.ID, Prev: s("prev"), Hash: s("hash"), Raw: []byte(s("rec"))}
}
