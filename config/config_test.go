package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// validConfig returns defaults plus an Asterisk and Redis section that
// Validate accepts.
func validConfig() Config {
	c := Default()
	c.Asterisk.URL = "http://127.0.0.1:8088/ari"
	c.Asterisk.User = "callwarden"
	c.Asterisk.Password = "pw"
	c.Redis.Addrs = []string{"127.0.0.1:6379"}
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		HTTP:     HTTP{Listen: ":8080", ShutdownTimeout: 10 * time.Second, ReadTimeout: 5 * time.Second, CheckAuth: CheckAuthToken, CheckRate: 200, CheckBurst: 400},
		Log:      Log{Level: "info", Format: "json"},
		Asterisk: Asterisk{App: "callwarden", Timeout: 2 * time.Second, Watchdog: "enforce", RefusalSound: "sound:ss-noservice", NotifySound: "sound:beep"},
		Redis:    Redis{Prefix: "callwarden:", Staleness: 30 * time.Second, WaitTimeout: time.Second},
		Audit:    Audit{HTTPQueueSize: 8192, PBXQueueSize: 2048, BatchSize: 256, PBXDropUnreadyFor: 30 * time.Second},
		// Recordings are kept forever unless retain says otherwise.
		Recordings: Recordings{SweepInterval: time.Minute, SweepBatch: 100},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() = %+v, want %+v", c, want)
	}
	t.Run("defaults are valid", func(t *testing.T) {
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // each must appear in the joined error
	}{
		{"listen without port", func(c *Config) { c.HTTP.Listen = "localhost" }, []string{"http.listen: missing port"}},
		{"listen with bad port", func(c *Config) { c.HTTP.Listen = ":http-alt" }, []string{`http.listen: invalid port "http-alt"`}},
		{"empty listen", func(c *Config) { c.HTTP.Listen = "" }, []string{"http.listen: required"}},
		{"zero timeouts", func(c *Config) { c.HTTP.ShutdownTimeout, c.HTTP.ReadTimeout = 0, -time.Second },
			[]string{"http.shutdown_timeout: must be positive", "http.read_timeout: must be positive"}},
		{"unknown log level and format", func(c *Config) { c.Log.Level, c.Log.Format = "verbose", "xml" },
			[]string{`log.level: unknown level "verbose"`, `log.format: unknown format "xml"`}},
		{"asterisk url without credentials", func(c *Config) { c.Asterisk.User, c.Asterisk.Password = "", "" },
			[]string{"asterisk.user: required", "asterisk.password: required"}},
		{"asterisk url with a bad scheme", func(c *Config) { c.Asterisk.URL = "ftp://pbx/ari" },
			[]string{`asterisk.url: scheme "ftp" not supported (want http or https)`}},
		{"asterisk url that does not parse", func(c *Config) { c.Asterisk.URL = "http://[::1" },
			[]string{"asterisk.url: invalid URL"}},
		{"asterisk url without host", func(c *Config) { c.Asterisk.URL = "http:///ari" },
			[]string{"asterisk.url:", "has no host"}},
		{"asterisk websocket with http scheme", func(c *Config) { c.Asterisk.WebsocketURL = "http://pbx:8088/ari/events" },
			[]string{"asterisk.websocket_url: scheme"}},
		{"asterisk watchdog mode unknown and sounds not media URIs", func(c *Config) {
			c.Asterisk.Watchdog, c.Asterisk.RefusalSound, c.Asterisk.NotifySound = "audit", "ss-noservice", "sound:"
		}, []string{`asterisk.watchdog: unknown mode "audit"`, `asterisk.refusal_sound: "ss-noservice" is not an ARI media URI`, `asterisk.notify_sound: "sound:" is not an ARI media URI`}},
		{"asterisk without app or timeout", func(c *Config) { c.Asterisk.App, c.Asterisk.Timeout = "", 0 },
			[]string{"asterisk.app: required", "asterisk.timeout: must be positive"}},
		{"asterisk pbx name that is not an id", func(c *Config) { c.Asterisk.PBX = "pbx 1\r\n" },
			[]string{"asterisk.pbx: invalid id"}},
		{"asterisk siblings without redis, or naming itself", func(c *Config) {
			c.Redis.Addrs, c.Asterisk.Siblings = nil, []string{c.Asterisk.App}
		}, []string{"asterisk.siblings: needs redis", `asterisk.siblings: "callwarden" is not another Stasis application name`}},
		{"redis staleness zero", func(c *Config) { c.Redis.Staleness = 0 }, []string{"redis.staleness: must be positive"}},
		{"redis wait_replicas negative", func(c *Config) { c.Redis.WaitReplicas = -1 }, []string{"redis.wait_replicas: must not be negative"}},
		{"redis wait_timeout zero while waiting", func(c *Config) { c.Redis.WaitReplicas, c.Redis.WaitTimeout = 1, 0 }, []string{"redis.wait_timeout: must be positive"}},
		{"audit lanes need room", func(c *Config) { c.Audit.PBXQueueSize, c.Audit.HTTPQueueSize = 0, 1<<30 },
			[]string{"audit.pbx_queue_size: must be between 1 and", "audit.http_queue_size: must be between 1 and"}},
		{"audit batch and unready window", func(c *Config) { c.Audit.BatchSize, c.Audit.PBXDropUnreadyFor = 0, 0 },
			[]string{"audit.batch_size: must be between 1 and 4096", "audit.pbx_drop_unready_for: must be positive"}},
		{"redis bad address", func(c *Config) { c.Redis.Addrs = []string{"a:1", "redis"} }, []string{"redis.addrs[1]: missing port"}},
		{"redis empty prefix", func(c *Config) { c.Redis.Prefix = "" }, []string{"redis.prefix: required"}},
		{"empty profiles path", func(c *Config) { c.Profiles = []string{"a.yaml", " "} }, []string{"profiles[1]: empty path"}},
		{"admin token without user or with a bad hash", func(c *Config) {
			c.Admin.Tokens = []AdminToken{{User: "alice", SHA256: strings.Repeat("a", 64)}, {SHA256: "beef"}}
		}, []string{"admin.tokens[1].user: required", "admin.tokens[1].sha256: want 64 hex digits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
	t.Run("retain takes a Go duration or days, and nothing else", func(t *testing.T) {
		c := Default()
		for retain, want := range map[string]time.Duration{"": 0, "90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour} {
			c.Recordings.Retain = retain
			if err := c.Validate(); err != nil || c.Recordings.RetainFor() != want {
				t.Errorf("retain %q: %v, %s; want %s", retain, err, c.Recordings.RetainFor(), want)
			}
		}
		for _, retain := range []string{"90", "-1d", "0d", "forever"} {
			c.Recordings.Retain = retain
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "recordings.retain") {
				t.Errorf("retain %q: %v, want an error on recordings.retain", retain, err)
			}
		}
	})
	t.Run("asterisk off needs no credentials", func(t *testing.T) {
		c := Default()
		c.Asterisk.User = ""
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})
	t.Run("all errors are reported at once", func(t *testing.T) {
		c := Default()
		c.HTTP.Listen, c.Log.Level, c.Redis.Staleness = "x", "loud", 0
		err := c.Validate()
		if n := len(strings.Split(err.Error(), "\n")); n != 3 {
			t.Errorf("got %d errors, want 3:\n%v", n, err)
		}
	})
}

func TestLoadFile(t *testing.T) {
	t.Run("every field is read", func(t *testing.T) {
		c, err := LoadFile("testdata/config/full.yaml")
		if err != nil {
			t.Fatal(err)
		}
		want := Config{
			Profiles: []string{"/etc/callwarden/profiles.yaml", "/etc/callwarden/users.yaml"},
			HTTP:     HTTP{Listen: "127.0.0.1:9090", ShutdownTimeout: 20 * time.Second, ReadTimeout: 3 * time.Second, CheckAuth: CheckAuthToken, CheckRate: 200, CheckBurst: 400},
			Log:      Log{Level: "debug", Format: "console"},
			Asterisk: Asterisk{URL: "http://127.0.0.1:8088/ari", User: "callwarden", Password: "s3cret-ari", App: "warden", Timeout: 1500 * time.Millisecond,
				Watchdog: "report-only", RefusalSound: "sound:beeperr", NotifySound: "tone:beep"},
			Redis: Redis{Addrs: []string{"127.0.0.1:6379"}, Password: "s3cret-redis", Prefix: "cw:", Staleness: time.Minute,
				WaitReplicas: 1, WaitTimeout: 2 * time.Second},
			Audit:      Audit{HTTPQueueSize: 4096, PBXQueueSize: 512, BatchSize: 64, PBXDropUnreadyFor: time.Minute},
			Recordings: Recordings{Retain: "90d", SweepInterval: 30 * time.Second, SweepBatch: 50, ImportForeign: true},
		}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("got  %#v\nwant %#v", c, want)
		}
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})
	t.Run("missing fields keep their defaults", func(t *testing.T) {
		c, err := LoadFile("testdata/config/partial.yaml")
		if err != nil {
			t.Fatal(err)
		}
		want := Default()
		want.HTTP.Listen = ":9000"
		if !reflect.DeepEqual(c, want) {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("an empty file gives the defaults", func(t *testing.T) {
		c, err := LoadFile("testdata/config/empty.yaml")
		if err != nil || !reflect.DeepEqual(c, Default()) {
			t.Errorf("got %+v, %v", c, err)
		}
	})
	t.Run("an unknown field is an error with its line", func(t *testing.T) {
		_, err := LoadFile("testdata/config/unknown.yaml")
		if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "listne") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a bad duration is an error", func(t *testing.T) {
		_, err := LoadFile("testdata/config/baddur.yaml")
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a missing file names its path", func(t *testing.T) {
		_, err := LoadFile("testdata/config/nope.yaml")
		if err == nil || !strings.Contains(err.Error(), "testdata/config/nope.yaml") {
			t.Errorf("got %v", err)
		}
	})
}

func TestFreeSWITCHValidation(t *testing.T) {
	c := Default()
	c.Profiles = []string{"p.yaml"}
	c.FreeSWITCH.ESLAddress = "fs:8021"
	c.FreeSWITCH.OutboundListen = "nope"
	c.FreeSWITCH.PBX = "bad pbx"
	c.FreeSWITCH.Timeout = -time.Second
	c.FreeSWITCH.Watchdog = "audit"
	c.FreeSWITCH.RecordingsDir = "/recordings/with a space"
	c.FreeSWITCH.WatchdogLease = true // without redis
	err := c.Validate()
	if err == nil {
		t.Fatal("an incomplete freeswitch section was accepted")
	}
	for _, field := range []string{"freeswitch.esl_password: required", "freeswitch.outbound_listen", "freeswitch.pbx", "freeswitch.timeout", `freeswitch.watchdog: unknown mode "audit"`, "freeswitch.recordings_dir: want an absolute path", "freeswitch.watchdog_lease: needs redis"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	c = Default()
	c.Profiles = []string{"p.yaml"}
	if err := c.Validate(); err != nil {
		t.Fatalf("no freeswitch section: %v", err)
	}
}

func TestApplyEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	t.Run("environment overrides the file, unset variables do not", func(t *testing.T) {
		c, err := LoadFile("testdata/config/full.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = c.ApplyEnv(env(map[string]string{
			EnvProfiles:                 " a.yaml, b.yaml ,,",
			EnvHTTPListen:               ":7000",
			EnvLogLevel:                 "warn",
			EnvLogFormat:                "json",
			EnvAsteriskURL:              "https://pbx:8089/ari",
			EnvAsteriskUser:             "ari",
			EnvAsteriskPassword:         "from-env",
			EnvAsteriskApp:              "cw",
			EnvAsteriskWatchdog:         "off",
			EnvRedisAddrs:               "r1:6379,r2:6379",
			EnvRedisPassword:            "redis-env",
			EnvRedisPrefix:              "x:",
			EnvRedisStaleness:           "5s",
			EnvRedisWaitReplicas:        "1",
			EnvRedisWaitTimeout:         "500ms",
			EnvAuditPBXQueueSize:        "1000",
			EnvFreeSWITCHESLAddress:     "fs:8021",
			EnvFreeSWITCHESLPassword:    "esl-env",
			EnvFreeSWITCHOutboundListen: "127.0.0.1:9084",
			EnvFreeSWITCHPBX:            "fs1",
			EnvFreeSWITCHTimeout:        "3s",
			EnvFreeSWITCHWatchdog:       "report-only",
			EnvFreeSWITCHWatchdogLease:  "true",
			EnvRecordingsRetain:         "30d",
		}))
		if err != nil {
			t.Fatal(err)
		}
		want := Config{
			Profiles: []string{"a.yaml", "b.yaml"},
			HTTP:     HTTP{Listen: ":7000", ShutdownTimeout: 20 * time.Second, ReadTimeout: 3 * time.Second, CheckAuth: CheckAuthToken, CheckRate: 200, CheckBurst: 400},
			Log:      Log{Level: "warn", Format: "json"},
			Asterisk: Asterisk{URL: "https://pbx:8089/ari", User: "ari", Password: "from-env", App: "cw", Timeout: 1500 * time.Millisecond,
				Watchdog: "off", RefusalSound: "sound:beeperr", NotifySound: "tone:beep"},
			FreeSWITCH: FreeSWITCH{ESLAddress: "fs:8021", ESLPassword: "esl-env", OutboundListen: "127.0.0.1:9084", PBX: "fs1", Timeout: 3 * time.Second, Watchdog: "report-only", WatchdogLease: true},
			Redis: Redis{Addrs: []string{"r1:6379", "r2:6379"}, Password: "redis-env", Prefix: "x:", Staleness: 5 * time.Second,
				WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond},
			Audit:      Audit{HTTPQueueSize: 4096, PBXQueueSize: 1000, BatchSize: 64, PBXDropUnreadyFor: time.Minute},
			Recordings: Recordings{Retain: "30d", SweepInterval: 30 * time.Second, SweepBatch: 50, ImportForeign: true},
		}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("got  %#v\nwant %#v", c, want)
		}
	})
	t.Run("an empty environment changes nothing", func(t *testing.T) {
		c := Default()
		if err := c.ApplyEnv(env(nil)); err != nil || !reflect.DeepEqual(c, Default()) {
			t.Errorf("got %+v, %v", c, err)
		}
	})
	t.Run("malformed durations name their variables", func(t *testing.T) {
		c := Default()
		err := c.ApplyEnv(env(map[string]string{
			EnvRedisStaleness:          "30 seconds",
			EnvAsteriskTimeout:         "2",
			EnvHTTPShutdownTimeout:     "1m",
			EnvAuditHTTPQueueSize:      "lots",
			EnvFreeSWITCHWatchdogLease: "yes please",
		}))
		for _, w := range []string{"CALLWARDEN_REDIS_STALENESS", "CALLWARDEN_ASTERISK_TIMEOUT", "CALLWARDEN_AUDIT_HTTP_QUEUE_SIZE", "CALLWARDEN_FREESWITCH_WATCHDOG_LEASE"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("missing %s in %v", w, err)
			}
		}
		if c.HTTP.ShutdownTimeout != time.Minute || c.Redis.Staleness != 30*time.Second {
			t.Errorf("valid variables not applied or invalid ones applied: %+v", c)
		}
	})
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "hunter2"
	s := Secret(value)
	c := Default()
	c.Asterisk.Password = s
	c.Redis.Password = s
	yamlOut, jsonOut := mustMarshal(t, c)
	outputs := map[string]string{
		"%v":          fmt.Sprintf("%v", s),
		"%s":          fmt.Sprintf("%s", s),
		"%q":          fmt.Sprintf("%q", s),
		"%x":          fmt.Sprintf("%x", s),
		"%d":          fmt.Sprintf("%d", s),
		"%#v":         fmt.Sprintf("%#v", s),
		"%+v":         fmt.Sprintf("%+v", s),
		"config %v":   fmt.Sprintf("%v", c),
		"config %+v":  fmt.Sprintf("%+v", c),
		"config %#v":  fmt.Sprintf("%#v", c),
		"pointer %+v": fmt.Sprintf("%+v", &c),
		"String":      s.String(),
		"yaml":        yamlOut,
		"json":        jsonOut,
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, value) {
				t.Errorf("leaks the secret: %s", out)
			}
			if !strings.Contains(out, "******") {
				t.Errorf("does not show the mask: %s", out)
			}
		})
	}
	t.Run("reveal gives the value", func(t *testing.T) {
		if s.Reveal() != value {
			t.Errorf("Reveal() = %q", s.Reveal())
		}
	})
	t.Run("an unset secret prints empty", func(t *testing.T) {
		if got := fmt.Sprint(Secret("")); got != "" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("a secret is read from YAML as is", func(t *testing.T) {
		var a Asterisk
		if err := yaml.Unmarshal([]byte("password: "+value), &a); err != nil || a.Password.Reveal() != value {
			t.Errorf("got %v, %v", a.Password.Reveal(), err)
		}
	})
}

func TestAdminTokens(t *testing.T) {
	hash := strings.Repeat("0f", 32)
	t.Run("tokens are read from the config file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		writeFile(t, path, "admin:\n  tokens:\n    - {user: alice, sha256: "+hash+"}\n  tokens_file: /run/secrets/tokens.yaml\n")
		c, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := Admin{Tokens: []AdminToken{{User: "alice", SHA256: hash}}, TokensFile: "/run/secrets/tokens.yaml"}
		if !reflect.DeepEqual(c.Admin, want) {
			t.Errorf("admin = %+v", c.Admin)
		}
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})
	t.Run("the tokens file comes from the environment", func(t *testing.T) {
		c := Default()
		getenv := func(k string) string { return map[string]string{EnvAdminTokensFile: "/etc/cw/tokens.yaml"}[k] }
		if err := c.ApplyEnv(getenv); err != nil || c.Admin.TokensFile != "/etc/cw/tokens.yaml" {
			t.Errorf("tokens_file %q, %v", c.Admin.TokensFile, err)
		}
	})
	t.Run("a tokens file is read and checked", func(t *testing.T) {
		dir := t.TempDir()
		good := filepath.Join(dir, "good.yaml")
		writeFile(t, good, "tokens:\n  - user: bob\n    sha256: "+hash+"\n")
		got, err := LoadTokensFile(good)
		if err != nil || len(got) != 1 || got[0].User != "bob" {
			t.Errorf("got %+v, %v", got, err)
		}
		bad := filepath.Join(dir, "bad.yaml")
		writeFile(t, bad, "tokens:\n  - user: bob\n    sha256: nothex\n")
		if _, err := LoadTokensFile(bad); err == nil || !strings.Contains(err.Error(), "tokens[0].sha256") {
			t.Errorf("bad file: %v", err)
		}
		unknown := filepath.Join(dir, "unknown.yaml")
		writeFile(t, unknown, "tokens:\n  - user: bob\n    token: plain\n")
		if _, err := LoadTokensFile(unknown); err == nil {
			t.Error("a plain token field was accepted")
		}
		if _, err := LoadTokensFile(filepath.Join(dir, "missing.yaml")); err == nil {
			t.Error("a missing file was accepted")
		}
	})
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func TestCheckAuth(t *testing.T) {
	withListen := func(mode, listen string) Config {
		c := Default()
		c.HTTP.CheckAuth, c.HTTP.Listen = mode, listen
		return c
	}
	t.Run("checks need a token by default, 200/s burst 400", func(t *testing.T) {
		h := Default().HTTP
		if h.CheckAuth != CheckAuthToken || h.CheckRate != 200 || h.CheckBurst != 400 {
			t.Errorf("defaults %+v", h)
		}
	})
	for _, listen := range []string{"127.0.0.1:8080", "127.0.0.53:0", "[::1]:8080"} {
		t.Run("none-on-loopback is accepted on "+listen, func(t *testing.T) {
			c := withListen(CheckAuthLoopback, listen)
			if err := c.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
	for _, listen := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080", "localhost:8080"} {
		t.Run("none-on-loopback is refused on "+listen, func(t *testing.T) {
			c := withListen(CheckAuthLoopback, listen)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "http.check_auth: none-on-loopback needs every HTTP listen address to be a loopback address") {
				t.Errorf("Validate = %v", err)
			}
		})
	}
	t.Run("an unknown mode is refused", func(t *testing.T) {
		c := withListen("none", "127.0.0.1:8080")
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `http.check_auth: unknown mode "none"`) {
			t.Errorf("Validate = %v", err)
		}
	})
	t.Run("the mode comes from the environment", func(t *testing.T) {
		c := Default()
		getenv := func(k string) string { return map[string]string{EnvHTTPCheckAuth: CheckAuthLoopback}[k] }
		if err := c.ApplyEnv(getenv); err != nil || c.HTTP.CheckAuth != CheckAuthLoopback {
			t.Errorf("check_auth %q, %v", c.HTTP.CheckAuth, err)
		}
	})
	t.Run("a rate limit must be positive", func(t *testing.T) {
		c := Default()
		c.HTTP.CheckRate, c.HTTP.CheckBurst = 0, 0
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "http.check_rate") || !strings.Contains(err.Error(), "http.check_burst") {
			t.Errorf("Validate = %v", err)
		}
	})
	t.Run("check tokens are named, admin tokens belong to a user", func(t *testing.T) {
		hash := strings.Repeat("0f", 32)
		c := Default()
		c.Admin.Tokens = []AdminToken{
			{Name: "pbx1", Role: TokenRoleCheck, SHA256: hash},
			{User: "alice", SHA256: hash},
			{User: "alice", Role: TokenRoleCheck, SHA256: hash},
			{Name: "x", SHA256: hash},
			{User: "bob", Role: "root", SHA256: hash},
		}
		err := c.Validate()
		for _, want := range []string{"admin.tokens[2].name: required for a check token", "admin.tokens[2].user:",
			"admin.tokens[3].user: required", "admin.tokens[3].name:", `admin.tokens[4].role: unknown role "root"`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate = %v, want %q", err, want)
			}
		}
		if err != nil && (strings.Contains(err.Error(), "tokens[0]") || strings.Contains(err.Error(), "tokens[1]")) {
			t.Errorf("a valid token refused: %v", err)
		}
	})
}

// TestDeployExampleConfigIsValid keeps the example a PBX administrator
// copies from deploy/asterisk loadable and valid.
func TestDeployExampleConfigIsValid(t *testing.T) {
	c, err := LoadFile("../deploy/asterisk/callwarden.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("deploy/asterisk/callwarden.yaml.example: %v", err)
	}
	if c.Asterisk.PBX != "pbx1" || c.HTTP.CheckAuth != CheckAuthToken || len(c.Admin.Tokens) != 1 {
		t.Errorf("example read as %+v", c)
	}
}

// TestDeployFreeSWITCHExampleConfigIsValid keeps deploy/freeswitch's example
// loadable and valid, its ESL password coming from the environment as the
// example says.
func TestDeployFreeSWITCHExampleConfigIsValid(t *testing.T) {
	c, err := LoadFile("../deploy/freeswitch/callwarden.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "freeswitch.esl_password") {
		t.Errorf("without %s the example validated (%v); want esl_password required", EnvFreeSWITCHESLPassword, err)
	}
	env := map[string]string{EnvFreeSWITCHESLPassword: "s3cret-from-env"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("deploy/freeswitch/callwarden.yaml.example: %v", err)
	}
	f := c.FreeSWITCH
	if f.ESLAddress != "127.0.0.1:8021" || f.OutboundListen != "127.0.0.1:8084" || f.PBX != "fs1" ||
		f.Watchdog != "enforce" || f.ESLPassword.Reveal() != "s3cret-from-env" || c.Redis.Prefix != "callwarden:" {
		t.Errorf("example read as %+v", c)
	}
}

// TestDeployProductionConfigsAreValid keeps deploy/production's two daemons
// loadable and valid, their secrets coming from the environment (the unit's
// EnvironmentFile), and what makes them a pair: different Stasis
// applications on the same PBX, the same Sentinel-backed Redis, one
// watchdog.
func TestDeployProductionConfigsAreValid(t *testing.T) {
	env := map[string]string{EnvAsteriskPassword: "ari-secret", EnvRedisPassword: "redis-secret"}
	load := func(t *testing.T, name string) Config {
		t.Helper()
		c, err := LoadFile("../deploy/production/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "asterisk.password") {
			t.Errorf("%s validated without %s (%v); want asterisk.password required", name, EnvAsteriskPassword, err)
		}
		if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("deploy/production/%s: %v", name, err)
		}
		if _, err := c.Redis.Conn(); err != nil {
			t.Fatalf("deploy/production/%s: redis: %v", name, err)
		}
		return c
	}
	a, b := load(t, "callwarden-a.yaml"), load(t, "callwarden-b.yaml")
	if a.Asterisk.App != "callwarden-a" || b.Asterisk.App != "callwarden-b" {
		t.Errorf("applications %q and %q, want callwarden-a and callwarden-b", a.Asterisk.App, b.Asterisk.App)
	}
	if a.Asterisk.PBX != b.Asterisk.PBX || a.Asterisk.URL != b.Asterisk.URL {
		t.Errorf("the two daemons name different PBXs: %q at %s and %q at %s", a.Asterisk.PBX, a.Asterisk.URL, b.Asterisk.PBX, b.Asterisk.URL)
	}
	if a.Asterisk.Watchdog != WatchdogEnforce || b.Asterisk.Watchdog != WatchdogEnforce {
		t.Errorf("watchdogs %q and %q, want enforce on both (the lease holder acts)", a.Asterisk.Watchdog, b.Asterisk.Watchdog)
	}
	if strings.Join(a.Asterisk.Siblings, ",") != "callwarden-b" || strings.Join(b.Asterisk.Siblings, ",") != "callwarden-a" {
		t.Errorf("siblings %q and %q, want each daemon to name the other's application", a.Asterisk.Siblings, b.Asterisk.Siblings)
	}
	if len(a.Redis.Addrs) != 3 || a.Redis.MasterName == "" || strings.Join(a.Redis.Addrs, ",") != strings.Join(b.Redis.Addrs, ",") ||
		a.Redis.MasterName != b.Redis.MasterName || a.Redis.Prefix != b.Redis.Prefix {
		t.Errorf("the daemons do not share one Sentinel-backed store: %v and %v", a.Redis, b.Redis)
	}
	if a.Redis.Password.Reveal() != "redis-secret" {
		t.Error("the Redis password does not come from the environment")
	}
}
