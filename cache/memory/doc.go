// Package memory holds the in-process backends of enforce's store
// contracts: Store (a writable policy store with a change log and
// notifications, the same semantics as the Redis store), File (the
// read-only policy store over a profiles file), Recordings, AuditLog (the
// same hash chain as the Redis stream) and Tokens. They serve a single
// daemon without Redis, the command-line tests and the contract suite
// (cache/storetest); their content is lost on restart.
//
// It owns no wire format of its own: policies are normalised through
// cache/internal/wire, so that what a Store returns is what Redis would.
// It must not import another backend, cache, config or a PBX adapter.
package memory
