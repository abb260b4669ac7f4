package tilecast

import "time"

// Counts are the state file's totals that health checks, metrics and
// status show. The store keeps them as it writes, in the transactions that
// change them, so reading them costs the same at a thousand channels as at
// a million: nothing is counted when they are read.
type Counts struct {
	Channels    int // registered push channels
	OutboxDepth int // notifications waiting in the outbox
	DeadLetters int // notifications given up on after max_attempts
	// Broken are the broken feed states by feed name, of every feed the
	// state file has states of, configured or not; a name with none is
	// absent. FeedsBroken narrows them to the configured feeds.
	Broken map[string]BrokenStates
}

// BrokenStates counts the broken states stored under one feed name.
type BrokenStates struct {
	Global int // the feed's own state, as a global feed: 0 or 1
	Users  int // per-user copies, as a per-user feed
}

// FeedsBroken is how many states of the configured feeds are broken: a
// global feed's own state, each user's copy of a per-user feed. States of
// feeds no longer configured, and those from before a feed's URL gained or
// lost {user}, do not count: the count FeedStatuses makes from the states
// themselves, without reading them.
func (c *Counts) FeedsBroken(feeds []Feed) int {
	n := 0
	seen := make(map[string]bool, len(feeds))
	for i := range feeds {
		f := &feeds[i]
		if seen[f.Name] {
			continue
		}
		seen[f.Name] = true
		b := c.Broken[f.Name]
		if f.PerUser() {
			n += b.Users
		} else {
			n += b.Global
		}
	}
	return n
}

// Instance is one of the daemons sharing a PostgreSQL state, as its
// heartbeat row and leases show it (status, /v1/status).
type Instance struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// Alive: the heartbeat is recent (within a lease).
	Alive bool `json:"alive"`
	// Leases is how many outbox entries it holds a lease on.
	Leases int `json:"leases"`
}
