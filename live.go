package tilecast

import "sync/atomic"

// Reloadable holds the current instance of a part that a config reload
// rebuilds while the daemon runs (the feed fetcher, the push client),
// so that a new setting takes effect for the next fetch or send without
// stopping anything. A call takes the current instance with Acquire and
// gives it back with Release; Replace makes a new instance current at
// once, and the one it replaces is closed when the last call that
// acquired it has released it: a request in flight finishes on the
// client it started on. It is safe for concurrent use.
type Reloadable[T any] struct {
	cur   atomic.Pointer[Lease[T]]
	close func(T)
}

// Lease is one instance of a Reloadable, acquired for one call.
type Lease[T any] struct {
	v T
	// refs counts the calls holding v, plus one while v is current. At
	// zero v is closed, and it can never be acquired again.
	refs  atomic.Int64
	close func(T)
}

// NewReloadable returns a Reloadable whose current instance is v; close,
// when not nil, releases an instance no call holds any more.
func NewReloadable[T any](v T, close func(T)) *Reloadable[T] {
	r := &Reloadable[T]{close: close}
	r.cur.Store(r.lease(v))
	return r
}

func (r *Reloadable[T]) lease(v T) *Lease[T] {
	l := &Lease[T]{v: v, close: r.close}
	l.refs.Store(1)
	return l
}

// Acquire returns the current instance for one call; the caller must
// Release it exactly once when the call is done.
func (r *Reloadable[T]) Acquire() *Lease[T] {
	for {
		l := r.cur.Load()
		n := l.refs.Load()
		// At zero l was replaced and closed meanwhile: Load again finds
		// its successor. Otherwise count this call in, unless the count
		// moved under us.
		if n > 0 && l.refs.CompareAndSwap(n, n+1) {
			return l
		}
	}
}

// Current returns the current instance without holding it: for reading
// what it is (tests, logs), not for calls that must outlive a Replace.
func (r *Reloadable[T]) Current() T { return r.cur.Load().v }

// Replace makes v the current instance. The previous one is closed once
// every call that acquired it has released it (at once if none holds it).
func (r *Reloadable[T]) Replace(v T) {
	r.cur.Swap(r.lease(v)).Release()
}

// Value is the leased instance.
func (l *Lease[T]) Value() T { return l.v }

// Release ends the call that acquired l.
func (l *Lease[T]) Release() {
	if l.refs.Add(-1) == 0 && l.close != nil {
		l.close(l.v)
	}
}
