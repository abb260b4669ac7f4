package store

import (
	"bytes"
	"testing"
)

// TestArenaTake: slices handed out never overlap (bbolt keeps each until
// the commit), requests larger than a block get their own, and blocks
// start small and double up to arenaMaxBlock.
func TestArenaTake(t *testing.T) {
	var a arena
	var got [][]byte
	var caps []int
	for i, n := range []int{100, 3000, 2000, 9000, 40000, 100000, 50, 70000, 64000} {
		before := cap(a.buf)
		b := a.take(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("take(%d) = len %d cap %d", n, len(b), cap(b))
		}
		for j := range b {
			b[j] = byte(i + 1)
		}
		got = append(got, b)
		if cap(a.buf) != before {
			caps = append(caps, cap(a.buf))
		}
	}
	for i, b := range got {
		if !bytes.Equal(b, bytes.Repeat([]byte{byte(i + 1)}, len(b))) {
			t.Errorf("slice %d was overwritten by a later take", i)
		}
	}
	want := []int{arenaMinBlock, 2 * arenaMinBlock, 4 * arenaMinBlock, 40000, 100000, arenaMaxBlock, 70000, arenaMaxBlock}
	if len(caps) != len(want) {
		t.Fatalf("blocks %v, want %v", caps, want)
	}
	for i := range want {
		if caps[i] != want[i] {
			t.Errorf("blocks %v, want %v", caps, want)
			break
		}
	}
}
