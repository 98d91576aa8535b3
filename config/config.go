package config

import (
	"errors"
	"time"
)

// Config is the daemon configuration. Precedence is flags > CALLWARDEN_*
// environment > YAML file > Default(); cmd applies them in that order.
type Config struct {
	// Profiles are profiles files served when no store is configured.
	Profiles []string `yaml:"profiles"`
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
	// Asterisk and Redis are filled in by later subsystems; zero means off.
	Asterisk Asterisk `yaml:"asterisk"`
	Redis    Redis    `yaml:"redis"`
}

// HTTP configures the check API, health and metrics endpoints.
type HTTP struct {
	Listen          string        `yaml:"listen"`           // default ":8080"
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // default 10s
	ReadTimeout     time.Duration `yaml:"read_timeout"`     // default 5s
}

// Log configures the zap logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error; default info
	Format string `yaml:"format"` // json or console; default json
}

// Asterisk configures the ARI adapter.
type Asterisk struct {
	URL          string        `yaml:"url"`           // e.g. http://127.0.0.1:8088/ari
	WebsocketURL string        `yaml:"websocket_url"` // derived from URL when empty
	User         string        `yaml:"user"`
	Password     Secret        `yaml:"password"`
	App          string        `yaml:"app"`     // default "callwarden"
	Timeout      time.Duration `yaml:"timeout"` // per REST call; default 2s
}

// Redis configures the shared store.
type Redis struct {
	Addrs      []string      `yaml:"addrs"`
	MasterName string        `yaml:"master_name"`
	Username   string        `yaml:"username"`
	Password   Secret        `yaml:"password"`
	Prefix     string        `yaml:"prefix"`    // default "callwarden:"
	Staleness  time.Duration `yaml:"staleness"` // default 30s
}

// Secret is a string that never prints its value.
type Secret string

// String hides the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "******"
}

// Default returns the configuration with every default set.
func Default() Config { return Config{} }

// Validate reports every invalid field, named by its YAML path.
func (c *Config) Validate() error { return errors.New("TODO") }

// LoadFile reads a YAML daemon config on top of Default(). Unknown fields
// are errors.
func LoadFile(path string) (Config, error) { return Config{}, errors.New("TODO") }

// ApplyEnv overlays CALLWARDEN_* variables read through getenv (cmd passes
// os.Getenv), e.g. CALLWARDEN_HTTP_LISTEN, CALLWARDEN_PROFILES (comma
// separated), CALLWARDEN_LOG_LEVEL.
func (c *Config) ApplyEnv(getenv func(string) string) error { return errors.New("TODO") }
