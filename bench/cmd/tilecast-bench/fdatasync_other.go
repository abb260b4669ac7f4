//go:build !linux

package main

import "os"

// fdatasync is fsync where Linux's fdatasync is missing, as in bbolt.
func fdatasync(f *os.File) error { return f.Sync() }
