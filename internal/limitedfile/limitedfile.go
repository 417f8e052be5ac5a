// Package limitedfile reads small configuration files (PEM keys, CA bundles,
// config files) with a size bound, so that a path pointing at a huge file or
// at a device such as /dev/zero fails with a clear error instead of
// exhausting memory.
package limitedfile

import (
	"fmt"
	"io"
	"os"
)

// Read returns the content of the file at path, or an error if it cannot be
// read or holds more than limit bytes. Errors from the operating system are
// returned as they are (they name the path).
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
