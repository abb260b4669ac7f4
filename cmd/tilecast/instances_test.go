package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// dbProxy is a loopback TCP proxy in front of a test database: unplugging
// it is a database outage (connections cut, new ones refused) without
// touching the server other tests use.
type dbProxy struct {
	t      *testing.T
	target func() (net.Conn, error)
	ln     net.Listener
	addr   string

	mu      sync.Mutex
	conns   []net.Conn
	stopped chan struct{}
}

// newDBProxy returns the proxy and the URL that reaches dbURL through it.
func newDBProxy(t *testing.T, dbURL string) (*dbProxy, string) {
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	network, addr := "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		network, addr = "unix", filepath.Join(cfg.Host, fmt.Sprintf(".s.PGSQL.%d", cfg.Port))
	}
	p := &dbProxy{t: t, target: func() (net.Conn, error) { return net.Dial(network, addr) }}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.close)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.addr)
	q := u.Query()
	q.Del("host")
	q.Set("port", port)
	u.Host = host
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *dbProxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.ln, p.addr, p.stopped = ln, ln.Addr().String(), make(chan struct{})
	go func() {
		defer close(p.stopped)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := p.target()
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// unplug cuts every connection and refuses new ones.
func (p *dbProxy) unplug() {
	p.ln.Close()
	<-p.stopped
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// plug accepts connections again, on the same address.
func (p *dbProxy) plug() { p.listen(p.addr) }

func (p *dbProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// On a PostgreSQL state /healthz fails while the database is unreachable
// (a load balancer sends API calls elsewhere) and passes again once it is
// back, while the watchdog's condition holds throughout: the daemon's own
// loops work, and a restart would not bring the database back.
func TestHealthWhileTheDatabaseIsDown(t *testing.T) {
	proxy, dbURL := newDBProxy(t, pgtest.New(t))
	db, err := postgres.Open(t.Context(), dbURL, postgres.Options{Instance: "one", Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := config.Default()
	bot := &tilecast.Bot{Store: db, Logger: slog.New(slog.DiscardHandler)}
	sched := &fakeBeat{at: time.Now()}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	deliverDone := make(chan struct{})
	go func() { bot.Deliver(ctx); close(deliverDone) }()
	defer func() { stop(); <-deliverDone }()
	health, alive := databaseHealth(t.Context(), func() *config.Config { return cfg }, sched, bot, db, defaultHealthLimits(db))
	waitFor(t, "healthy", func() bool { return health() == nil })

	proxy.unplug()
	if err := health(); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("health with the database down: %v, want it unreachable", err)
	}
	time.Sleep(200 * time.Millisecond) // the deliverer meets the outage too
	sched.at = time.Now()
	if err := alive(); err != nil {
		t.Errorf("the watchdog's condition with the database down: %v, want it fed", err)
	}
	proxy.plug()
	waitFor(t, "healthy again", func() bool { return health() == nil })
	// The daemon's own faults still fail both.
	sched.at = time.Now().Add(-2 * time.Minute)
	if err := alive(); err == nil || !strings.Contains(err.Error(), "scheduler") {
		t.Errorf("stale scheduler: %v", err)
	}
}

// Instances sharing a database are listed by `status` (text and JSON)
// with their heartbeats and leases; a stopped one is gone from the list.
func TestStatusListsInstances(t *testing.T) {
	dbURL := pgtest.New(t)
	cfg := e2eConfigState(t, "http://127.0.0.1:1", dbURL)
	one, err := postgres.Open(t.Context(), dbURL, postgres.Options{Instance: "host-1", Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	two, err := postgres.Open(t.Context(), dbURL, postgres.Options{Instance: "host-2"})
	if err != nil {
		t.Fatal(err)
	}
	ch, _, err := one.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/phone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := one.Enqueue([]tilecast.Notification{{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast, Payload: []byte("t")}}); err != nil {
		t.Fatal(err)
	}
	if ps, err := one.Due(time.Now().Add(time.Second), 10, nil); err != nil || len(ps) != 1 {
		t.Fatalf("Due = %d, %v", len(ps), err)
	}
	code, out, errs := runCLI(t, t.Context(), "status", "--config", cfg)
	if code != exitOK || !regexpMatch(`host-1 +alive +heartbeat \S+ +leases 1 .*v-test`, out) || !regexpMatch(`host-2 +alive .*leases 0`, out) {
		t.Errorf("status: exit %d:\n%s%s", code, out, errs)
	}
	two.Close()
	code, out, _ = runCLI(t, t.Context(), "status", "--config", cfg, "--json")
	var rep statusReport
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Instances) != 1 || rep.Instances[0].ID != "host-1" ||
		rep.Instances[0].Leases != 1 || !rep.Instances[0].Alive {
		t.Errorf("status --json after host-2 stopped: exit %d:\n%s", code, out)
	}
}

// The daemon sweeps the ledger on its interval, and goes on after a
// failed sweep.
func TestPruneLedgers(t *testing.T) {
	var calls atomic.Int32
	p := pruneFunc(func() (int, error) {
		if calls.Add(1) == 1 {
			return 0, fmt.Errorf("disk on fire")
		}
		return 3, nil
	})
	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		pruneLedgers(ctx, p, slog.New(slog.NewTextHandler(logs, nil)), time.Millisecond, 5*time.Millisecond)
		close(done)
	}()
	waitFor(t, "two sweeps", func() bool { return calls.Load() >= 2 })
	cancel()
	<-done
	if l := logs.String(); !strings.Contains(l, "disk on fire") || !strings.Contains(l, "delivery ledger pruned") || !strings.Contains(l, "dropped=3") {
		t.Errorf("log:\n%s", l)
	}
}

type pruneFunc func() (int, error)

func (f pruneFunc) PruneLedger() (int, error) { return f() }

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
