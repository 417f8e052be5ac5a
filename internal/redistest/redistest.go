// Package redistest starts a real redis-server (Debian's package, which
// scripts/test.sh installs) on a loopback port for one test. Where it is
// missing the test is skipped, except on CI (CI=true), where it fails.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	Addr string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free loopback port, without persistence,
// until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed (scripts/test.sh installs Debian's redis-server)")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	s := &Server{}
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		s.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port),
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--protected-mode", "yes")
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if s.wait(5 * time.Second) {
			t.Cleanup(s.Stop)
			return s
		}
		s.Stop()
	}
	t.Fatal("redis-server did not start")
	return nil
}

// Stop ends the server (Redis then refuses connections: a test of the
// store being down).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_, _ = s.cmd.Process.Wait()
	s.cmd = nil
}

// wait reports whether the server answers PING within d.
func (s *Server) wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
