// Package fstest plays FreeSWITCH's side of an ESL socket in tests.
package fstest

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// PlaySocket connects to the outbound socket at addr as FreeSWITCH's
// socket application does and answers every command it reads with what
// answer returns, until answer says stop (after its answer is written),
// the connection fails or 5 s have passed. It returns every command
// received.
func PlaySocket(t *testing.T, addr string, answer func(cmd string) (out string, stop bool)) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	var got []string
	for {
		cmd, err := ReadCommand(r)
		if err != nil {
			return got
		}
		got = append(got, cmd)
		out, stop := answer(cmd)
		if out != "" {
			if _, err := c.Write([]byte(out)); err != nil {
				return got
			}
		}
		if stop {
			return got
		}
	}
}

// ReadCommand reads one command: lines up to an empty line, joined by LF.
func ReadCommand(r *bufio.Reader) (string, error) {
	var lines []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			if len(lines) == 0 {
				continue
			}
			return strings.Join(lines, "\n"), nil
		}
		lines = append(lines, l)
	}
}
