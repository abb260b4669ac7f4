package wns_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

func wellFormed(t testing.TB, body []byte) {
	t.Helper()
	if err := checkXML(body); err != nil {
		t.Fatalf("payload is not well-formed XML: %v\n%q", err, body)
	}
}

func checkXML(body []byte) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// clock is a settable clock for the token and backoff tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
