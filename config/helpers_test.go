package config

import (
	"encoding/json"
	"testing"

	"gopkg.in/yaml.v3"
)

// mustMarshal dumps c as YAML and as JSON, the two ways a config is
// printed.
func mustMarshal(tb testing.TB, c Config) (yamlOut, jsonOut string) {
	tb.Helper()
	y, err := yaml.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	j, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	return string(y), string(j)
}
