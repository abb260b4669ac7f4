//go:build crash

package multitest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/store/postgres"
)

// pushLog records, in front of the emulator, what reached each phone:
// every push request to a channel, whatever the answer (a send past the
// daily cap is one even if the push service refused it), and of the
// pushes answered 200 each toast's Text2, in order, and how often the
// same request body came again (a duplicate: toasts of different items,
// and tiles of different runs, differ). The emulator's own history keeps
// only a phone's last 50 toasts, too few for the long runs.
type pushLog struct {
	mu       sync.Mutex
	requests map[string]int      // channel path → push requests
	toasts   map[string][]string // channel path → Text2 of each toast answered 200
	distinct map[string]map[string]bool
	seen     map[pushKey]int
	ok       int // 200 answers
	dups     int
}

type pushKey struct {
	path string
	body [sha256.Size]byte
}

func newPushLog() *pushLog {
	return &pushLog{requests: map[string]int{}, toasts: map[string][]string{},
		distinct: map[string]map[string]bool{}, seen: map[pushKey]int{}}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

// wrap records each POST to h.
func (l *pushLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		l.requests[r.URL.Path]++
		l.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.code != http.StatusOK {
			return
		}
		text2, toast := toastText(body)
		k := pushKey{r.URL.Path, sha256.Sum256(body)}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.ok++
		l.seen[k]++
		if l.seen[k] > 1 {
			l.dups++
		}
		if toast {
			l.toasts[r.URL.Path] = append(l.toasts[r.URL.Path], text2)
			if l.distinct[r.URL.Path] == nil {
				l.distinct[r.URL.Path] = map[string]bool{}
			}
			l.distinct[r.URL.Path][text2] = true
		}
	})
}

func (l *pushLog) counts() (ok, dups int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.dups
}

// has reports whether phone p was sent (answered 200) the toast text.
func (l *pushLog) has(p emulator.Channel, text string) bool {
	path := channelPath(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.distinct[path][text]
}

// distinctToasts is how many different toast texts phone p was sent.
func (l *pushLog) distinctToasts(p emulator.Channel) int {
	path := channelPath(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.distinct[path])
}

func (l *pushLog) toastsOf(p emulator.Channel) []string {
	path := channelPath(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.toasts[path]...)
}

func (l *pushLog) requestsTo(p emulator.Channel) int {
	path := channelPath(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests[path]
}

// toastText is the Text2 of an MPNS toast payload; false for a tile.
func toastText(body []byte) (string, bool) {
	var n struct {
		Toast *struct {
			Text2 string `xml:"Text2"`
		} `xml:"Toast"`
	}
	if xml.Unmarshal(body, &n) != nil || n.Toast == nil {
		return "", false
	}
	return n.Toast.Text2, true
}

func channelPath(p emulator.Channel) string {
	u, err := url.Parse(p.URI)
	if err != nil {
		panic(err) // the emulator made it
	}
	return u.Path
}

// A cappedPhone is a phone the test says was pushed DailyCap − headroom
// times earlier today: those sends are reserved in daily_caps before the
// instances start, as another instance's sends of the day would be. The
// instances may send it at most headroom more today; the rest must wait
// for the next UTC midnight, not be dropped. (The emulator's own 406
// knows nothing of the earlier sends, so it is not the check: the
// requests that reached the phone are.)
type cappedPhone struct {
	emulator.Channel
	id       string
	headroom int
}

// capSome caps every nth of ps (headroom 0, 1, … 5 in turn: below what
// each phone is sent in the tests' short runs, so the cap binds) and
// returns them, the others, and the UTC day they are capped on.
func capSome(t *testing.T, db *postgres.DB, ps []emulator.Channel, every int) (capped []cappedPhone, free []emulator.Channel, day string) {
	t.Helper()
	chs, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, ch := range chs {
		ids[ch.URI] = ch.ID
	}
	var cids []string
	var want []int
	for i, p := range ps {
		if i%every != every/2 {
			free = append(free, p)
			continue
		}
		c := cappedPhone{Channel: p, id: ids[p.URI], headroom: len(capped) % 6}
		capped = append(capped, c)
		cids, want = append(cids, c.id), append(want, tilecast.DailyCap-c.headroom)
	}
	day = time.Now().UTC().Format(time.DateOnly)
	got, err := db.ReserveSends(day, cids, want, tilecast.DailyCap)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range got {
		if n != want[i] {
			t.Fatalf("reserved %d earlier sends for %s, want %d", n, capped[i].Name, want[i])
		}
	}
	return capped, free, day
}

// nextMidnight is the UTC midnight that ends day.
func nextMidnight(day string) time.Time {
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		panic(err)
	}
	return d.Add(24 * time.Hour)
}

// onlyCappedWait reports whether everything left in the outbox belongs to
// a capped phone and waits for the midnight that ends day: what was not
// held back by a cap has gone out.
func onlyCappedWait(conn *pgx.Conn, capped []cappedPhone, day string) bool {
	ids := make([]string, len(capped))
	for i, c := range capped {
		ids[i] = c.id
	}
	var n, jobs int
	return conn.QueryRow(context.Background(),
		"SELECT count(*) FROM outbox WHERE NOT (channel_id = ANY($1) AND next_attempt = $2)",
		ids, nextMidnight(day)).Scan(&n) == nil && n == 0 &&
		conn.QueryRow(context.Background(), "SELECT count(*) FROM fanout_jobs").Scan(&jobs) == nil && jobs == 0
}

// checkCaps checks the capped phones once every instance has stopped:
// no phone was sent more than its headroom (the requests that reached
// it), each of the toasts want(c) arrived or waits in the outbox for the
// next midnight (postponed, not dropped), and a phone due more toasts
// than its headroom had its whole day reserved. It returns how many
// phones reached their cap. A run that crossed a UTC midnight checks
// nothing: the caps of the new day let the rest out.
func checkCaps(t *testing.T, conn *pgx.Conn, db *postgres.DB, log *pushLog, capped []cappedPhone, day string, want func(cappedPhone) []string) int {
	t.Helper()
	if now := time.Now().UTC().Format(time.DateOnly); now != day {
		t.Logf("the run crossed midnight (%s to %s): the daily cap is not checked", day, now)
		return -1
	}
	midnight := nextMidnight(day)
	reached := 0
	for _, c := range capped {
		if n := log.requestsTo(c.Channel); n > c.headroom {
			t.Errorf("%s was sent %d pushes, over the %d its daily cap left (%d sent earlier today)",
				c.Name, n, c.headroom, tilecast.DailyCap-c.headroom)
		}
		rows, err := conn.Query(context.Background(),
			"SELECT o.next_attempt, o.kind, p.body FROM outbox o JOIN payloads p ON p.id = o.payload_id WHERE o.channel_id = $1", c.id)
		if err != nil {
			t.Fatal(err)
		}
		waiting := map[string]bool{}
		for rows.Next() {
			var at time.Time
			var kind string
			var body []byte
			if err := rows.Scan(&at, &kind, &body); err != nil {
				t.Fatal(err)
			}
			if !at.Equal(midnight) {
				t.Errorf("%s: a %s waits until %s, want the next midnight %s", c.Name, kind, at.UTC(), midnight)
			}
			if s, ok := toastText(body); ok {
				waiting[s] = true
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		items := want(c)
		for _, s := range items {
			if !log.has(c.Channel, s) && !waiting[s] {
				t.Errorf("%s: the toast %q neither arrived nor waits for midnight: dropped", c.Name, s)
			}
		}
		n, err := db.Reserved(c.id, day)
		if err != nil {
			t.Fatal(err)
		}
		if n == tilecast.DailyCap {
			reached++
		} else if len(items) > c.headroom {
			t.Errorf("%s: %d sends reserved on %s, want the whole cap %d (it was due %d toasts, %d left of its day)",
				c.Name, n, day, tilecast.DailyCap, len(items), c.headroom)
		}
	}
	return reached
}

// itemNames are "item-from" … "item-to".
func itemNames(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("item-%d", i))
	}
	return out
}
