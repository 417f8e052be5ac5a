//go:build unix

package sidecar

import (
	"errors"
	"syscall"
)

// alive reports whether an idle connection may be reused: the upstream has
// neither closed it nor sent anything on it (a peek that does not wait).
func (c *upConn) alive() bool {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	live := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, the connection is open and quiet. 0 bytes
		// is the upstream's close, anything else is unsolicited.
		_ = n
		live = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && live
}
