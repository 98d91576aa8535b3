package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/enforce"
)

// Keys of the live session registry (enforce.SessionStore) and of the
// index of recordings in progress, after the prefix. The registry has a
// hash tag of its own ({cw:sess}); the recordings index shares the
// recordings' ({cw:rec}) so that SaveRecording changes both in one
// transaction.
const (
	// KeySessionPrefix + id is a hash: field "data" holds the session's
	// JSON (written by its owner), field "end_requested_by" the user who
	// asked another daemon to end it (RequestSessionEnd).
	KeySessionPrefix = "{cw:sess}:session:"
	// KeySessionEndPrefix + id is a string, the JSON of the session's end
	// (enforce.EndedSession), expiring after enforce.SessionEndKeep.
	KeySessionEndPrefix = "{cw:sess}:ended:"
	// KeySessions is a sorted set of the live session ids, scored by
	// start time (unix ms).
	KeySessions = "{cw:sess}:sessions"
	// KeyAlivePrefix + instance is a daemon's heartbeat (Beat): a string
	// that expires with the beat's ttl.
	KeyAlivePrefix = "{cw:sess}:alive:"
	// KeyRecordingsLive is a sorted set of every active or paused
	// recording id, scored by start time (unix ms).
	KeyRecordingsLive = "{cw:rec}:live"
)

const (
	sessionData  = "data"
	sessionEndBy = "end_requested_by"
)

// requestEndScript sets end_requested_by on a session that exists.
// KEYS: session. ARGV: by. Returns 1, or 0 when there is no session.
const requestEndScript = `
if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'end_requested_by', ARGV[1])
return 1`

var requestEnd = redis.NewScript(requestEndScript)

// PutSession implements enforce.SessionStore: the session's data and the
// live index change together (MULTI/EXEC); an end already requested is
// kept (another field of the hash). Errors: enforce.ErrUnavailable.
func (r *Store) PutSession(ctx context.Context, s enforce.LiveSession) error {
	if s.ID == "" {
		return errors.New("put session: empty id")
	}
	s.EndRequestedBy = ""
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("put session %s: %w", s.ID, err)
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, r.Key(KeySessionPrefix+s.ID), sessionData, raw)
		p.ZAdd(ctx, r.Key(KeySessions), redis.Z{Score: float64(s.StartedAt.UnixMilli()), Member: s.ID})
		return nil
	})
	if err != nil {
		return r.wrap("put session "+s.ID, err)
	}
	return nil
}

// EndSession implements enforce.SessionStore: the session, its index
// entry and its end (a key that expires) change together (MULTI/EXEC).
// Errors: enforce.ErrUnavailable.
func (r *Store) EndSession(ctx context.Context, e enforce.EndedSession) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("end session %s: %w", e.ID, err)
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.Key(KeySessionPrefix+e.ID))
		p.ZRem(ctx, r.Key(KeySessions), e.ID)
		p.Set(ctx, r.Key(KeySessionEndPrefix+e.ID), raw, enforce.SessionEndKeep)
		return nil
	})
	if err != nil {
		return r.wrap("end session "+e.ID, err)
	}
	return nil
}

// SessionEnds implements enforce.SessionStore with one MGET (the keys
// share a hash tag). Errors: enforce.ErrUnavailable, enforce.ErrCorrupt.
func (r *Store) SessionEnds(ctx context.Context, ids []string) (map[string]enforce.EndedSession, error) {
	out := make(map[string]enforce.EndedSession, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.Key(KeySessionEndPrefix + id)
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, r.wrap("read session ends", err)
	}
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		var e enforce.EndedSession
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("%w: end of session %s: %w", enforce.ErrCorrupt, ids[i], err)
		}
		out[ids[i]] = e
	}
	return out, nil
}

// Session implements enforce.SessionStore. Errors: enforce.ErrNotFound,
// enforce.ErrUnavailable, enforce.ErrCorrupt.
func (r *Store) Session(ctx context.Context, id string) (enforce.LiveSession, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	h, err := r.c.HGetAll(ctx, r.Key(KeySessionPrefix+id)).Result()
	if err != nil {
		return enforce.LiveSession{}, r.wrap("get session "+id, err)
	}
	return decodeSession(id, h)
}

// LiveSessions implements enforce.SessionStore: the index, then every
// session in one pipeline; an id whose session went in between is left
// out. Errors: enforce.ErrUnavailable, enforce.ErrCorrupt.
func (r *Store) LiveSessions(ctx context.Context) ([]enforce.LiveSession, error) {
	out, err := indexed(ctx, r, KeySessions, "list live sessions", func(ctx context.Context, ids []string) ([]enforce.LiveSession, error) {
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HGetAll(ctx, r.Key(KeySessionPrefix+id))
			}
			return nil
		})
		if err != nil {
			return nil, r.wrap("read live sessions", err)
		}
		return present(len(ids), func(i int) (enforce.LiveSession, error) { return decodeSession(ids[i], cmds[i].Val()) })
	})
	enforce.SortSessions(out)
	return out, err
}

// indexed reads the ids in the sorted set key (what says the read in
// errors), then their items with read, within one call's deadline.
func indexed[T any](ctx context.Context, r *Store, key, what string, read func(ctx context.Context, ids []string) ([]T, error)) ([]T, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	ids, err := r.c.ZRange(ctx, r.Key(key), 0, -1).Result()
	if err != nil {
		return nil, r.wrap(what, err)
	}
	return read(ctx, ids)
}

func decodeSession(id string, h map[string]string) (enforce.LiveSession, error) {
	raw, ok := h[sessionData]
	if !ok {
		return enforce.LiveSession{}, fmt.Errorf("session %s: %w", id, enforce.ErrNotFound)
	}
	var s enforce.LiveSession
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return enforce.LiveSession{}, fmt.Errorf("%w: session %s: %w", enforce.ErrCorrupt, id, err)
	}
	s.EndRequestedBy = h[sessionEndBy]
	return s, nil
}

// RequestSessionEnd implements enforce.SessionStore: the owner sees the
// flag on its next poll. Errors: enforce.ErrNotFound,
// enforce.ErrUnavailable.
func (r *Store) RequestSessionEnd(ctx context.Context, id, by string) error {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	n, err := requestEnd.Run(ctx, r.c, []string{r.Key(KeySessionPrefix + id)}, by).Int()
	if err != nil {
		return r.wrap("request the end of session "+id, err)
	}
	if n == 0 {
		return fmt.Errorf("session %s: %w", id, enforce.ErrNotFound)
	}
	return nil
}

// ActiveRecordings implements enforce.ActiveRecordingLister from the
// index SaveRecording keeps (recordings saved before the index existed
// are not listed). Errors: enforce.ErrUnavailable, enforce.ErrCorrupt.
func (r *Store) ActiveRecordings(ctx context.Context) ([]enforce.Recording, error) {
	out, err := indexed(ctx, r, KeyRecordingsLive, "list active recordings", func(ctx context.Context, ids []string) ([]enforce.Recording, error) {
		return present(len(ids), func(i int) (enforce.Recording, error) {
			rec, err := r.recording(ctx, ids[i])
			if err == nil && rec.State == enforce.RecordingStopped {
				err = enforce.ErrNotFound // stopped since the index was read
			}
			return rec, err
		})
	})
	enforce.SortRecordings(out)
	return out, err
}

// present returns get(i) for i in [0, n), leaving out what is not found
// (removed since its index was read); it stops at the first other error.
func present[T any](n int, get func(i int) (T, error)) ([]T, error) {
	out := make([]T, 0, n)
	for i := range n {
		v, err := get(i)
		if errors.Is(err, enforce.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Beat implements enforce.SessionStore: SET with the ttl as expiry.
// Errors: enforce.ErrUnavailable.
func (r *Store) Beat(ctx context.Context, instance string, ttl time.Duration) error {
	if instance == "" || ttl <= 0 {
		return errors.New("beat: want an instance and a positive ttl")
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	if err := r.c.Set(ctx, r.Key(KeyAlivePrefix+instance), "1", ttl).Err(); err != nil {
		return r.wrap("beat "+instance, err)
	}
	return nil
}

// Alive implements enforce.SessionStore: one MGET (the keys share the
// registry's hash tag). Errors: enforce.ErrUnavailable.
func (r *Store) Alive(ctx context.Context, instances []string) (map[string]bool, error) {
	out := make(map[string]bool, len(instances))
	if len(instances) == 0 {
		return out, nil
	}
	keys := make([]string, len(instances))
	for i, id := range instances {
		keys[i] = r.Key(KeyAlivePrefix + id)
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, r.wrap("read heartbeats", err)
	}
	for i, v := range vals {
		if v != nil {
			out[instances[i]] = true
		}
	}
	return out, nil
}
