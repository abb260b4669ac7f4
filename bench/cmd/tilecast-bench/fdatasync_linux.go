package main

import (
	"errors"
	"os"
	"syscall"
)

// fdatasync is what bbolt calls on Linux after writing a commit's pages
// and again after its meta page.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
