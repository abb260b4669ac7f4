// The platforms where bbolt locks its file otherwise than with flock(2).
//go:build windows || plan9 || solaris || aix || android

package store

import (
	"errors"
	"os"
	"time"
)

// lockable says lockExclusive cannot take bbolt's lock here: without it
// Open cannot move an unusable new file aside safely, so it reports the
// file instead.
const lockable = false

// lockExclusive is never called where lockable is false.
func lockExclusive(*os.File, time.Duration) error { return errors.ErrUnsupported }
