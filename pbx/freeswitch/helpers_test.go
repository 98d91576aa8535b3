package freeswitch

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// playSocket connects to the outbound socket at addr as FreeSWITCH's
// socket application does and answers every command it reads with what
// answer returns, until answer says stop (after its answer is written),
// the connection fails or 5 s have passed. It returns every command
// received.
func playSocket(t *testing.T, addr string, answer func(cmd string) (out string, stop bool)) []string {
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
		cmd, err := readCommand(r)
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
