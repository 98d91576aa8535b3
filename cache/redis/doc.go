// Package redis is callwarden's shared store on Redis (docs/redis.md): the
// policy with its change log and pub/sub notifications, recording
// metadata, the hash-chained audit stream and the API token hashes, each
// implementing the contract enforce declares for it, with the key schema
// (Key* constants, SchemaVersion) and the Lua scripts that keep each
// change atomic. Errors caused by Redis being unreachable wrap
// enforce.ErrUnavailable; that classification is made once, in Store.wrap.
//
// It must not import another backend, cache, config or a PBX adapter.
// Callers that also import go-redis name it redisstore.
package redis
