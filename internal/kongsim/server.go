package kongsim

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	kpp "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

// Option configures Start.
type Option func(*options)

type options struct {
	env  []string
	args []string
}

// Timeouts: every single read from the plugin socket (each RPC reply and
// each PDK call inside an event), and the wait for the socket in Start.
const (
	callTimeout  = 10 * time.Second
	startTimeout = 15 * time.Second
)

// WithEnv adds "KEY=value" entries to the plugin process environment. Like
// Kong, whose nginx clears a worker's environment except TZ and the names of
// `env` directives (KONG_NGINX_MAIN_ENV) before worker 0 spawns the plugin
// server, kongsim passes the plugin nothing else.
func WithEnv(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// WithArgs adds command-line arguments after "-kong-prefix <dir>", as a
// KONG_PLUGINSERVER_<NAME>_START_CMD with arguments would.
func WithArgs(args ...string) Option { return func(o *options) { o.args = append(o.args, args...) } }

// Server is a running plugin-server process, seen from Kong's side. All methods
// are safe for concurrent use; like Kong, every RPC uses its own connection,
// taken from a small keep-alive pool.
type Server struct {
	dir    string
	socket string
	info   PluginInfo

	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{}
	// waitErr is written before exited is closed.
	waitErr error

	mu     sync.Mutex
	idle   []net.Conn
	seq    int64 // RpcCall.sequence
	cfgSeq int   // __seq__ injected into configs
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Start does what Kong does for an embedded go-pdk plugin server: it queries
// "binary -dump" for the plugin info, then launches "binary -kong-prefix
// <tmpdir>" and waits until <tmpdir>/<binary-name>.socket accepts connections.
func Start(binary string, opts ...Option) (*Server, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}

	abs, err := filepath.Abs(binary)
	if err != nil {
		return nil, err
	}
	dump, err := DumpInfo(abs)
	if err != nil {
		return nil, err
	}

	// Keep the directory short: unix socket paths are limited to ~108 bytes.
	dir, err := os.MkdirTemp("", "kongsim-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:    dir,
		socket: filepath.Join(dir, filepath.Base(abs)+".socket"),
		info:   dump.Plugins[0],
		output: &syncBuffer{},
		exited: make(chan struct{}),
	}
	s.cmd = exec.Command(abs, append([]string{"-kong-prefix", dir}, o.args...)...)
	s.cmd.Dir = dir
	s.cmd.Stdout = s.output
	s.cmd.Stderr = s.output
	s.cmd.Env = []string{} // nil would mean "inherit"
	if tz, ok := os.LookupEnv("TZ"); ok {
		s.cmd.Env = append(s.cmd.Env, "TZ="+tz)
	}
	s.cmd.Env = append(s.cmd.Env, o.env...)
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.Dial("unix", s.socket)
		if err == nil {
			s.idle = append(s.idle, c)
			return s, nil
		}
		select {
		case <-s.exited:
			_ = s.Close()
			return nil, fmt.Errorf("kongsim: plugin server %s exited before listening (%v); output:\n%s", abs, s.waitErr, s.output.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.Close()
			return nil, fmt.Errorf("kongsim: socket %s not ready after %v: %v; output:\n%s", s.socket, startTimeout, err, s.output.String())
		}
	}
}

// Output returns everything the plugin process wrote to stdout/stderr so far
// (go-pdk logs errors there, e.g. "no plugin instance 3").
func (s *Server) Output() string { return s.output.String() }

// Exited reports whether the plugin process has terminated.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Close kills the plugin process and removes its directory. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for _, c := range s.idle {
			_ = c.Close()
		}
		s.idle = nil
		s.mu.Unlock()
		if s.cmd != nil && s.cmd.Process != nil {
			select {
			case <-s.exited:
			default:
				_ = s.cmd.Process.Kill()
				select {
				case <-s.exited:
				case <-time.After(10 * time.Second):
					s.closeErr = errors.New("kongsim: plugin process did not exit after kill")
				}
			}
		}
		if err := os.RemoveAll(s.dir); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// ---------------------------------------------------------------------------
// connections and framing

func (s *Server) getConn() (net.Conn, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("kongsim: server closed")
	}
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	return net.Dial("unix", s.socket)
}

// putConn returns a connection whose last exchange completed cleanly (Kong's
// c:setkeepalive()).
func (s *Server) putConn(c net.Conn) {
	_ = c.SetDeadline(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.idle) >= 8 {
		_ = c.Close()
		return
	}
	s.idle = append(s.idle, c)
}

func (s *Server) nextSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// Frames are a little-endian uint32 length followed by that many bytes, in both
// directions (Kong: lua_pack "I"; go-pdk: binary.LittleEndian).
func writeFrame(w io.Writer, data []byte) error {
	buf := make([]byte, 4+len(data))
	binary.LittleEndian.PutUint32(buf, uint32(len(data)))
	copy(buf[4:], data)
	_, err := w.Write(buf)
	return err
}

func readFrame(c net.Conn, timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("frame too large (%d bytes)", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c, data); err != nil {
		return nil, err
	}
	return data, nil
}

// connError explains a failed read: go-pdk answers a failing command by closing
// the connection and logging the reason, so wait briefly for that log line.
func (s *Server) connError(what string, err error, outBefore int) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isConnReset(err) {
		// Wait until the process has exited (then all output is captured) or
		// its output has grown and been quiet for a moment.
		deadline := time.Now().Add(500 * time.Millisecond)
		last, quietSince := -1, time.Now()
		for time.Now().Before(deadline) && !s.Exited() {
			n := s.output.Len()
			if n != last {
				last, quietSince = n, time.Now()
			} else if n > outBefore && time.Since(quietSince) >= 25*time.Millisecond {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		msg := strings.TrimSpace(s.output.From(outBefore))
		state := ""
		if s.Exited() {
			state = fmt.Sprintf(" (plugin process exited: %v)", s.waitErr)
		}
		if msg == "" {
			return fmt.Errorf("kongsim: %s: plugin server closed the connection%s", what, state)
		}
		return fmt.Errorf("kongsim: %s: plugin server closed the connection%s: %s", what, state, msg)
	}
	return fmt.Errorf("kongsim: %s: %w", what, err)
}

func isConnReset(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}

// call sends one RpcCall that is not an event and returns the RpcReturn.
func (s *Server) call(what string, rc *kpp.RpcCall) (*kpp.RpcReturn, error) {
	c, err := s.getConn()
	if err != nil {
		return nil, err
	}
	outBefore := s.output.Len()
	rc.Sequence = s.nextSeq()
	data, err := proto.Marshal(rc)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := writeFrame(c, data); err != nil {
		_ = c.Close()
		return nil, s.connError(what, err, outBefore)
	}
	reply, err := readFrame(c, callTimeout)
	if err != nil {
		_ = c.Close()
		return nil, s.connError(what, err, outBefore)
	}
	var ret kpp.RpcReturn
	if err := proto.Unmarshal(reply, &ret); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("kongsim: %s: decoding RpcReturn: %w", what, err)
	}
	if ret.Sequence != rc.Sequence {
		_ = c.Close()
		return nil, fmt.Errorf("kongsim: %s: reply sequence %d, want %d", what, ret.Sequence, rc.Sequence)
	}
	s.putConn(c)
	return &ret, nil
}

// ---------------------------------------------------------------------------
// instances

// StartInstance sends cmd_start_instance with the JSON configuration, exactly
// as Kong does (config = cjson.encode(conf)), after adding Kong's bookkeeping
// keys __key__, __seq__ and __plugin_id (go-pdk uses __seq__ as the instance
// id). It returns the instance id.
func (s *Server) StartInstance(name string, config []byte) (int, error) {
	ret, err := s.call("cmd_start_instance", &kpp.RpcCall{Call: &kpp.RpcCall_CmdStartInstance{
		CmdStartInstance: &kpp.CmdStartInstance{Name: name, Config: s.decorateConfig(name, config)},
	}})
	if err != nil {
		return 0, err
	}
	st := ret.GetInstanceStatus()
	if st == nil {
		return 0, errors.New("kongsim: reply carries no instance_status")
	}
	return int(st.InstanceId), nil
}

func (s *Server) decorateConfig(name string, config []byte) []byte {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(config)) == 0 {
		m = map[string]json.RawMessage{}
	} else if err := json.Unmarshal(config, &m); err != nil || m == nil {
		return config // not an object: let the plugin server reject it
	}
	s.mu.Lock()
	s.cfgSeq++
	seq := s.cfgSeq
	s.mu.Unlock()
	if _, ok := m["__seq__"]; !ok {
		m["__seq__"], _ = json.Marshal(seq)
	}
	if _, ok := m["__key__"]; !ok {
		m["__key__"], _ = json.Marshal("plugins:" + name + "::::")
	}
	if _, ok := m["__plugin_id"]; !ok {
		m["__plugin_id"], _ = json.Marshal(newUUID())
	}
	out, err := json.Marshal(m)
	if err != nil {
		return config
	}
	return out
}

// ---------------------------------------------------------------------------

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) From(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off > b.buf.Len() {
		return ""
	}
	return string(b.buf.Bytes()[off:])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
