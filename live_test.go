package tilecast

import (
	"sync"
	"sync/atomic"
	"testing"
)

// part is an instance that knows whether it was closed, and how often.
type part struct {
	id     int
	closed atomic.Int32
}

func newParts() *Reloadable[*part] {
	return NewReloadable(&part{id: 0}, func(p *part) { p.closed.Add(1) })
}

func TestReloadableClosesAfterTheLastCall(t *testing.T) {
	r := newParts()
	first := r.Current()
	held := r.Acquire()
	if held.Value() != first {
		t.Fatal("Acquire did not return the current instance")
	}
	second := &part{id: 1}
	r.Replace(second)
	held2 := r.Acquire()
	if r.Current() != second || held2.Value() != second {
		t.Fatal("after Replace the new instance is not current")
	}
	if first.closed.Load() != 0 {
		t.Fatal("the old instance was closed while a call held it")
	}
	held.Release()
	if first.closed.Load() != 1 {
		t.Fatalf("the old instance was closed %d times after its last call, want once", first.closed.Load())
	}
	r.Replace(&part{id: 2})
	if second.closed.Load() != 0 {
		t.Fatal("an instance with a call in flight was closed")
	}
	held2.Release()
	if second.closed.Load() != 1 {
		t.Fatalf("the second instance was closed %d times after its last call, want once", second.closed.Load())
	}
}

func TestReloadableReplaceWithoutCallsClosesAtOnce(t *testing.T) {
	r := newParts()
	first := r.Current()
	r.Replace(&part{id: 1})
	if first.closed.Load() != 1 {
		t.Errorf("an idle replaced instance was closed %d times, want once at once", first.closed.Load())
	}
}

// Under concurrent calls and replacements no call ever runs on a closed
// instance, and every replaced instance is closed exactly once.
func TestReloadableConcurrent(t *testing.T) {
	r := newParts()
	var all sync.Map
	all.Store(0, r.Current())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				l := r.Acquire()
				if l.Value().closed.Load() != 0 {
					t.Error("acquired a closed instance")
				}
				for range 10 {
					if l.Value().closed.Load() != 0 {
						t.Error("an instance was closed while a call held it")
					}
				}
				l.Release()
			}
		}()
	}
	const replacements = 500
	for i := 1; i <= replacements; i++ {
		p := &part{id: i}
		all.Store(i, p)
		r.Replace(p)
	}
	close(stop)
	wg.Wait()
	all.Range(func(k, v any) bool {
		p := v.(*part)
		want := int32(1)
		if p.id == replacements {
			want = 0 // still current
		}
		if got := p.closed.Load(); got != want {
			t.Errorf("instance %d closed %d times, want %d", p.id, got, want)
		}
		return true
	})
}
