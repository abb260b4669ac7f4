//go:build !linux

package store

import (
	"errors"
	"os"
)

// sendLogMapped: elsewhere the send log keeps one write(2) per record
// (mapSendLog relies on Linux's fallocate to make a full disk an error).
const sendLogMapped = false

func mapSendLog(*os.File, int64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapSendLog([]byte) error { return nil }
