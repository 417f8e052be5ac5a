//go:build !unix

package interop

// lockFile is a no-op where flock is unavailable: concurrent first installs
// of the same project may then collide.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
