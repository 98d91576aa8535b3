// Package config reads callwarden's two kinds of input: the daemon
// configuration (one typed Config with defaults and Validate) and the
// profiles files administrators write, which it turns into an
// enforce.Policy. Every error about a profiles file names file, line and
// field. It also embeds the seed templates under templates/.
//
// config knows nothing of Redis, ARI or ESL connections: it only parses and
// validates. Flags and the process environment are read by cmd, which hands
// them in.
package config
