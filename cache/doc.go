// Package cache holds what is really a cache in front of the stores: the
// Loader, which owns the snapshot a daemon decides from and follows a
// store's changes (enforce.ChangeSource) with Snapshot.Patch, and the
// AsyncAuditor, a decorator that takes audit writes off the decision path
// in front of any enforce.Auditor (enforce.BatchAuditor when it can).
//
// It depends on the contracts enforce declares, never on a backend: the
// backends are cache/memory (in-process stores, the profiles file) and
// cache/redis (the shared Redis store); cache/storetest is the contract
// suite both pass. cache never imports a backend, a PBX adapter, config or
// an HTTP package.

package cache
