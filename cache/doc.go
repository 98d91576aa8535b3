// Package cache holds callwarden's shared state: the policy snapshot source
// (a profiles file or Redis), recording metadata and the audit trail. It
// implements the interfaces enforce declares (RecordingStore, Auditor) and
// never imports a PBX adapter.
package cache
