// Package wire is what the store backends under cache share so that they
// behave alike: the policy's wire form (schema version 1, one JSON document
// per profile and per user) and the normalisation through it, the change
// log entry and its bounds, epochs, audit trail bounds, and the coalescing
// notification send the Loader uses too. It holds no state and does no
// I/O; it must not import a backend, cache, config or a PBX adapter.
package wire
