package config

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

const urlSecret = "s3cr3t-Pa55"

func TestRedisURL(t *testing.T) {
	t.Run("a redis URL gives the address, credentials and database", func(t *testing.T) {
		c := Default()
		c.Redis.Addrs = []string{"redis://cw:" + urlSecret + "@redis.example:6380/2"}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		conn, err := c.Redis.Conn()
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		want := RedisConn{Addrs: []string{"redis.example:6380"}, Username: "cw", Password: urlSecret, DB: 2}
		if fmt.Sprintf("%#v", conn) != fmt.Sprintf("%#v", want) || conn.Password.Reveal() != urlSecret {
			t.Fatalf("Conn = %#v, want %#v", conn, want)
		}
	})
	t.Run("rediss turns TLS on with the host as server name, port and database defaulted", func(t *testing.T) {
		c := Default()
		c.Redis.Addrs = []string{"rediss://:" + url.QueryEscape("p@ss/w:rd") + "@cache.internal"}
		conn, err := c.Redis.Conn()
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		if !conn.TLS || conn.ServerName != "cache.internal" || conn.Addrs[0] != "cache.internal:6379" || conn.DB != 0 ||
			conn.Username != "" || conn.Password.Reveal() != "p@ss/w:rd" {
			t.Fatalf("Conn = %#v (password %q)", conn, conn.Password.Reveal())
		}
	})
	t.Run("an unescaped slash or at sign is taken as part of the password", func(t *testing.T) {
		c := Default()
		c.Redis.Addrs = []string{"redis://cw:a/b@" + urlSecret + "@h:6379"}
		conn, err := c.Redis.Conn()
		if err != nil || conn.Password.Reveal() != "a/b@"+urlSecret || conn.Addrs[0] != "h:6379" {
			t.Fatalf("Conn = %#v, %v", conn, err)
		}
	})
	t.Run("host:port addresses keep the configured credentials", func(t *testing.T) {
		c := Default()
		c.Redis.Addrs, c.Redis.Username, c.Redis.Password = []string{"a:1", "b:2"}, "u", "pw"
		conn, err := c.Redis.Conn()
		if err != nil || len(conn.Addrs) != 2 || conn.Username != "u" || conn.Password.Reveal() != "pw" || conn.TLS {
			t.Fatalf("Conn = %#v, %v", conn, err)
		}
	})
	t.Run("the environment carries a URL whose password has a comma", func(t *testing.T) {
		c := Default()
		err := c.ApplyEnv(func(name string) string {
			if name == EnvRedisAddrs {
				return "redis://cw:a,b" + urlSecret + "@h:6379/1"
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := c.Redis.Conn()
		if err != nil || conn.Password.Reveal() != "a,b"+urlSecret {
			t.Fatalf("Conn = %#v, %v", conn, err)
		}
	})
	for name, addrs := range map[string][]string{
		"a bad escape in the password":         {"redis://cw:%zz" + urlSecret + "@h:6379"},
		"a space in the host":                  {"redis://cw:" + urlSecret + "@h st:6379"},
		"a bad port":                           {"redis://cw:" + urlSecret + "@h:port"},
		"a bad database":                       {"redis://cw:" + urlSecret + "@h:6379/zero"},
		"query options":                        {"redis://cw:" + urlSecret + "@h:6379/0?dial_timeout=1s"},
		"another scheme":                       {"http://cw:" + urlSecret + "@h:6379"},
		"credentials without a scheme":         {"cw:" + urlSecret + "@h:6379"},
		"a URL among several addresses":        {"redis://cw:" + urlSecret + "@h:6379", "h2:6379"},
		"a password both in the URL and apart": {"redis://cw:" + urlSecret + "@h:6379"},
	} {
		t.Run(name+" is refused without printing the password", func(t *testing.T) {
			c := Default()
			c.Redis.Addrs = addrs
			if strings.HasPrefix(name, "a password both") {
				c.Redis.Password = "other"
			}
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if strings.Contains(err.Error(), urlSecret) {
				t.Fatalf("error prints the password: %v", err)
			}
			if _, err := c.Redis.Conn(); err == nil || strings.Contains(err.Error(), urlSecret) {
				t.Fatalf("Conn = %v", err)
			}
		})
	}
	t.Run("a config dump redacts the URL password", func(t *testing.T) {
		c := Default()
		c.Redis.Addrs = []string{"redis://cw:" + urlSecret + "@h:6379/0"}
		y, j := mustMarshal(t, c)
		for _, out := range []string{y, j, fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.Redis)} {
			if strings.Contains(out, urlSecret) {
				t.Fatalf("dump prints the password:\n%s", out)
			}
			if !strings.Contains(out, "redis://cw:xxxxx@h:6379/0") {
				t.Fatalf("dump lacks the redacted URL:\n%s", out)
			}
		}
		if c.Redis.Addrs[0] != "redis://cw:"+urlSecret+"@h:6379/0" {
			t.Fatal("dumping changed the config")
		}
	})
}

// FuzzParseRedisAddr: whatever the address, parsing returns a result or
// an error, and neither the error nor the redacted form prints the
// password the address carries.
func FuzzParseRedisAddr(f *testing.F) {
	f.Add(uint8(0), "cw", "secret", "h:6379/0")
	f.Add(uint8(1), "", "p%40ss", "h")
	f.Add(uint8(0), "cw", "ab/cd", "h:6379")
	f.Add(uint8(0), "cw", "x y", "h st:6379")
	f.Add(uint8(2), "cw", "pw12", "h:1")
	f.Add(uint8(0), "", "pw12", "[::1]:6379/3")
	f.Add(uint8(0), "cw", "%zz12", "h:port")
	f.Fuzz(func(t *testing.T, scheme uint8, user, password, rest string) {
		prefix := [...]string{"redis://", "rediss://", ""}[scheme%3]
		raw := prefix + user + ":" + password + "@" + rest
		_, err := ParseRedisAddr(raw)
		red := RedactRedisAddr(raw)
		// skeleton is the redacted form of the same address with a password
		// of other letters: what it shows (the "@" before the host, a
		// default port) is not the password, even where it spells it.
		skeleton := RedactRedisAddr(prefix + user + ":QQQQQQQQ@" + rest)
		for _, secret := range []string{password, unescaped(password)} {
			if len(secret) < 4 || strings.Contains(prefix+user+rest, secret) || strings.Contains("xxxxx", secret) ||
				strings.Contains(skeleton, secret) {
				continue
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatalf("ParseRedisAddr(%q) = %v: prints the password", raw, err)
			}
			if strings.Contains(red, secret) {
				t.Fatalf("RedactRedisAddr(%q) = %q: prints the password", raw, red)
			}
		}
	})
}

func unescaped(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return ""
	}
	return u
}
