package lab

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// CallwardenEnv is this process's environment less any CALLWARDEN_* variable (the
// config a test or the demo writes must be the one that applies), plus extra.
func CallwardenEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CALLWARDEN_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// ServeCommand is `bin serve --config cfg` with CallwardenEnv(env...), writing its
// output to out. It runs in a process group of its own, so a Ctrl-C in the terminal
// reaches only the process that starts it, and it is killed if that process dies.
func ServeCommand(bin, cfg string, out io.Writer, env ...string) *exec.Cmd {
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = CallwardenEnv(env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// ServeConfig is a `callwarden serve` config deciding from the policy in the lab's
// Redis under prefix, with the Stasis application app on the lab's Asterisk and the
// HTTP API on listen. The ARI password is not in it: it goes in the environment, as
// in a deployment.
func (l *Lab) ServeConfig(listen, app, prefix string) string {
	return fmt.Sprintf(`http:
  listen: %q
log:
  level: debug
  format: json
asterisk:
  url: %q
  user: %q
  app: %q
redis:
  addrs: [%q]
  prefix: %q
`, listen, l.ARIURL, l.ARIUser, app, l.RedisAddr, prefix)
}
