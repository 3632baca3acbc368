//go:build !unix

package atomicfile

import "os"

var umask os.FileMode = 0o022
