// Package pgtest gives tests a real PostgreSQL server: a throw-away
// cluster started once per test binary (Main, from TestMain) and a fresh,
// empty schema for each test (New), so the tests of a package are
// independent of each other and may run in parallel.
//
// The cluster is Debian's PostgreSQL (initdb and postgres from
// /usr/lib/postgresql/N/bin, the newest N, else from PATH) in a short
// directory under /tmp: a unix socket path must stay under 107 bytes, and
// t.TempDir() is too long and, when the tests run as root, not readable by
// the unprivileged user PostgreSQL insists on running as. As root the
// server runs as the `postgres` OS user. It listens on its unix socket
// only (no TCP, so Debian's own cluster on port 5432 is no obstacle),
// with fsync off: it is thrown away with the directory when the tests end,
// and is killed with the test binary (Pdeathsig) if that dies first.
//
// TILECAST_TEST_POSTGRES=URL uses that server instead (a role that may
// CREATE SCHEMA in its database). A test that cannot have a server fails
// with the reason; it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable with the server's URL: set by the
// operator to use an existing server, else by Main once its cluster runs
// (so it reaches the tests, and any process they start, without package
// state).
const EnvURL = "TILECAST_TEST_POSTGRES"

// envErr carries why Main could not start a cluster to the tests, which
// fail with it.
const envErr = "TILECAST_TEST_POSTGRES_ERROR"

// EnvPasswordURL and EnvPassword name a role the server asks a password
// of (scram-sha-256): its URL, without the password, and the password.
// Main's cluster has one; with an existing server the operator sets them
// for the tests of password handling (PasswordURL).
const (
	EnvPasswordURL = "TILECAST_TEST_POSTGRES_PASSWORD_URL"
	EnvPassword    = "TILECAST_TEST_POSTGRES_PASSWORD"
)

// passwordRole is the role of Main's cluster that needs a password.
const passwordRole = "tilecast_pw"

// Main runs the tests of a package with a PostgreSQL server: call it from
// TestMain as os.Exit(pgtest.Main(m)). Unless EnvURL is set, it starts a
// cluster first and drops it after the tests. When no server can be
// started the tests still run, and New fails each test that needs one
// with the reason.
func Main(m *testing.M) int {
	if os.Getenv(EnvURL) != "" {
		return m.Run()
	}
	c, err := start()
	if err != nil {
		os.Setenv(envErr, err.Error())
		return m.Run()
	}
	os.Setenv(EnvURL, c.url)
	os.Setenv(EnvPasswordURL, strings.Replace(c.url, "postgres://postgres@", "postgres://"+passwordRole+"@", 1))
	os.Setenv(EnvPassword, c.password)
	code := m.Run()
	if err := c.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	return code
}

// PasswordURL returns the URL (without a password, with search_path a new
// schema as New's) of a role the server asks a password of, and the
// password.
func PasswordURL(t testing.TB) (string, string) {
	t.Helper()
	base, pw := os.Getenv(EnvPasswordURL), os.Getenv(EnvPassword)
	if base == "" || pw == "" {
		t.Fatalf("no PostgreSQL role with a password for the tests: with %s set, also set %s (a URL without the password, "+
			"of a role the server asks one of, that may use the schemas New creates) and %s", EnvURL, EnvPasswordURL, EnvPassword)
	}
	schema := Schema(New(t))
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPasswordURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), pw
}

// New creates an empty schema for t, dropped when t ends, and returns a
// connection URL whose search_path is that schema.
func New(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		why := os.Getenv(envErr)
		if why == "" {
			why = "the package's TestMain does not call pgtest.Main, and " + EnvURL + " is not set"
		}
		t.Fatalf("no PostgreSQL server for the tests: %s", why)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("PostgreSQL at %s: create schema: %v", Redact(base), err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Redact returns u without its password, for messages.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); ok {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	return p.String()
}

// cluster is a running throw-away server.
type cluster struct {
	dir      string // data directory's parent, also the socket directory
	url      string
	password string // of passwordRole
	proc     *exec.Cmd
	done     chan error // the postgres process's exit
}

// binDir finds the directory with initdb and postgres.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) }) // newest first
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH): " +
		"apt-get install -y postgresql, or set " + EnvURL + "=postgres://… to use a running server")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a throw-away cluster as Main does, for a
// program that is not a test (the benchmark): it returns the cluster's
// URL (a superuser that may create schemas) and a function that stops it
// and removes its directory. Durable keeps PostgreSQL's defaults (fsync,
// synchronous_commit, full_page_writes on), so what is measured is what a
// production primary does; the tests' cluster turns them off. Settings
// are more server settings, "name=value" each (postgres -c), such as
// shared_preload_libraries=pg_stat_statements.
func Start(durable bool, settings ...string) (url string, stop func() error, err error) {
	c, err := startCluster(durable, settings...)
	if err != nil {
		return "", nil, err
	}
	return c.url, c.stop, nil
}

// start initialises and starts the tests' cluster (not durable).
func start() (*cluster, error) { return startCluster(false) }

// startCluster initialises and starts a cluster, as the postgres OS user
// when the process runs as root.
func startCluster(durable bool, settings ...string) (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "tcpg")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root, PostgreSQL needs an unprivileged user: %w (the postgresql package creates it)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// Every local connection is trusted but passwordRole's, which must
	// give its password: the tests of password handling use it.
	hba := filepath.Join(data, "pg_hba.conf")
	conf, err := os.ReadFile(hba)
	if err == nil {
		err = os.WriteFile(hba, append([]byte("local all "+passwordRole+" scram-sha-256\n"), conf...), 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	c := &cluster{dir: dir, done: make(chan error, 1), password: hex.EncodeToString(pw[:])}
	started := make(chan error, 1)
	// Pdeathsig is sent when the thread that started the process exits,
	// so that thread stays locked to this goroutine until the server
	// exits: the server dies with the test binary, not before.
	go func() {
		runtime.LockOSThread()
		args := []string{"-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=300",
			"-c", "log_min_messages=warning"}
		if durable {
			args = append(args, "-c", "shared_buffers=256MB")
		} else {
			args = append(args, "-c", "shared_buffers=64MB", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		}
		for _, kv := range settings {
			args = append(args, "-c", kv)
		}
		c.proc = exec.Command(filepath.Join(bin, "postgres"), args...)
		c.proc.Dir = dir
		logf, err := os.Create(filepath.Join(dir, "server.log"))
		if err != nil {
			started <- err
			return
		}
		c.proc.Stdout, c.proc.Stderr = logf, logf
		c.proc.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		if err := c.proc.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.done <- c.proc.Wait()
		logf.Close()
	}()
	if err := <-started; err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.url = "postgres://postgres@/postgres?host=" + url.QueryEscape(dir) + "&sslmode=disable"
	if err := c.wait(); err != nil {
		_ = c.stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url)
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE ROLE "+passwordRole+" LOGIN SUPERUSER PASSWORD '"+c.password+"'")
		conn.Close(ctx)
	}
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("pgtest: create role %s: %w", passwordRole, err)
	}
	return c, nil
}

// wait returns once the server accepts connections.
func (c *cluster) wait() error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, c.url)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case werr := <-c.done:
			c.done <- werr
			log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("pgtest: postgres exited (%v):\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres does not accept connections: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the server down (immediate: nothing in it is kept) and
// removes its directory.
func (c *cluster) stop() error {
	defer os.RemoveAll(c.dir)
	if c.proc == nil || c.proc.Process == nil {
		return nil
	}
	_ = c.proc.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.proc.Process.Kill()
		<-c.done
	}
	return nil
}

// Schema returns the schema a URL from New names (its search_path).
func Schema(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(p.Query().Get("search_path"))
}
