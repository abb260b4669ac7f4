package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/tlstest"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

const (
	cliAdminKey = "cli-admin-key-7d3e1f9a0b2c4d6e"
	cliAppKey   = "cli-app-key-2b4d6f8a0c1e3f5a7b"
)

// TestAPIClientUsesAdminKey: with the daemon holding the state file, the
// operator commands use the first admin key of the keys file even when
// an app key comes first; a file with only app keys says an admin key is
// needed, without printing a key.
func TestAPIClientUsesAdminKey(t *testing.T) {
	o := newOpsEnv(t)
	if err := os.WriteFile(o.keys, []byte("app "+cliAppKey+"\nadmin "+cliAdminKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stop := o.startDaemon(t)
	defer stop()
	code, out, errs := runCLI(t, t.Context(), "status", "--config", o.cfg)
	if code != exitOK || !strings.Contains(out, "channels 0") {
		t.Fatalf("status with app key first: exit %d\n%s\n%s", code, out, errs)
	}
	if err := os.WriteFile(o.keys, []byte("app "+cliAppKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"channels", "list"}, {"outcomes"}, {"backup"}} {
		args = append(args, "--config", o.cfg)
		if args[0] == "backup" {
			args = append(args, filepath.Join(o.dir, "b.db"))
		}
		code, out, errs := runCLI(t, t.Context(), args...)
		if code == exitOK || !strings.Contains(errs, "only app keys") || !strings.Contains(errs, "need an admin key") {
			t.Errorf("%v with only an app key: exit %d, stderr %q", args, code, errs)
		}
		if strings.Contains(out+errs, cliAppKey) {
			t.Errorf("%v printed the key", args)
		}
	}
}

// TestCheckWarnsAboutBareKeys: check names file:line of every bare key
// line, never the key.
func TestCheckWarnsAboutBareKeys(t *testing.T) {
	o := newOpsEnv(t)
	if err := os.WriteFile(o.keys, []byte("# keys\nadmin "+cliAdminKey+"\n"+cliAppKey+"\napp "+cliAppKey+"x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, t.Context(), "check", "--config", o.cfg)
	if code != exitOK {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errs)
	}
	want := o.keys + ":3: a key without a role is an admin key"
	if !strings.Contains(errs, want) || strings.Count(errs, "without a role") != 1 {
		t.Errorf("stderr %q, want one warning %q", errs, want)
	}
	if strings.Contains(out+errs, cliAppKey) || strings.Contains(out+errs, cliAdminKey) {
		t.Errorf("check printed a key:\n%s%s", out, errs)
	}
}

// tlsDaemon holds a state file and serves the real API over TLS with cert,
// as `run` does; it returns the listen address.
func tlsDaemon(t *testing.T, o *opsEnv, cert tlstest.Cert) string {
	t.Helper()
	db, err := store.Open(o.state, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv, err := web.New(web.Options{
		Store:        db,
		Counts:       db.Counts,
		Feeds:        func() []tilecast.Feed { return nil },
		AllowedHosts: func() []string { return []string{"*.notify.live.net"} },
		APIKeysFile:  o.keys,
		TLSCertFile:  cert.CertFile,
		TLSKeyFile:   cert.KeyFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer(ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestAPIClientTLS: with http.tls_cert set the operator commands speak
// https to the daemon and verify its certificate: trusted through
// http.tls_ca_file they work; without it, or for another name, they refuse
// and say what to set.
func TestAPIClientTLS(t *testing.T) {
	o := newOpsEnv(t)
	cert := tlstest.SelfSigned(t, o.dir, "daemon", "127.0.0.1", "tilecast.test")
	addr := tlsDaemon(t, o, cert)
	config := func(name, extra string) string {
		path := o.writeConfig(t, name, addr, o.keys)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		http := fmt.Sprintf("[http]\ntls_cert = %q\ntls_key = %q\n%s", cert.CertFile, cert.KeyFile, extra)
		data = []byte(strings.Replace(string(data), "[http]\n", http, 1))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, extra string
		ok          bool
		msg         string
	}{
		{"trusted", fmt.Sprintf("tls_ca_file = %q\n", cert.CertFile), true, "channels 0"},
		{"trusted by name", fmt.Sprintf("tls_ca_file = %q\ntls_server_name = \"tilecast.test\"\n", cert.CertFile), true, "channels 0"},
		{"untrusted", "", false, "certificate cannot be verified (set http.tls_ca_file"},
		{"wrong name", fmt.Sprintf("tls_ca_file = %q\ntls_server_name = \"other.test\"\n", cert.CertFile), false, "certificate cannot be verified"},
	} {
		cfg := config(strings.ReplaceAll(tc.name, " ", "-")+".toml", tc.extra)
		code, out, errs := runCLI(t, t.Context(), "status", "--config", cfg)
		if tc.ok && (code != exitOK || !strings.Contains(out, tc.msg)) || !tc.ok && (code == exitOK || !strings.Contains(errs, tc.msg)) {
			t.Errorf("%s: exit %d\nstdout %s\nstderr %s\nwant ok=%v with %q", tc.name, code, out, errs, tc.ok, tc.msg)
		}
	}
	// A plain-HTTP client is not what the daemon speaks any more.
	if resp, err := http.Get("http://" + addr + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the TLS listener answered plain HTTP")
		}
	}
}

// TestDaemonTLSAndSIGHUP runs the daemon with a TLS listener and
// metrics behind an admin key; after the certificate files are renewed
// in place and a key's role changes, SIGHUP makes new connections get the
// new certificate and the key its new role.
func TestDaemonTLSAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "api-keys")
	tlstest.Write(t, keys, []byte("admin "+cliAdminKey+"\napp "+cliAppKey+"\n"))
	live := tlstest.SelfSigned(t, dir, "live", "127.0.0.1")
	first := live.DER
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "tilecast.toml")
	tlstest.Write(t, cfg, fmt.Appendf(nil, `state = %q
[http]
listen = %q
api_keys_file = %q
metrics_auth = "admin"
tls_cert = %q
tls_key = %q
`, filepath.Join(dir, "state.db"), addr, keys, live.CertFile, live.KeyFile))

	d := startDaemon(t, cfg)

	// get makes a new connection trusting only root and returns the status
	// and the certificate the daemon presented.
	get := func(root []byte, path, key string) (int, []byte, error) {
		pool := x509.NewCertPool()
		c, err := x509.ParseCertificate(root)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		resp.Body.Close()
		return resp.StatusCode, resp.TLS.PeerCertificates[0].Raw, nil
	}
	for _, tc := range []struct {
		path, key string
		want      int
	}{
		{"/healthz", "", 200}, {"/metrics", "", 401}, {"/metrics", cliAppKey, 403}, {"/metrics", cliAdminKey, 200},
		{"/v1/status", cliAppKey, 403}, {"/v1/status", cliAdminKey, 200},
	} {
		code, served, err := get(first, tc.path, tc.key)
		if err != nil || code != tc.want || !bytes.Equal(served, first) {
			t.Errorf("%s with %q: %d, %v; want %d over the first certificate", tc.path, tc.key, code, err, tc.want)
		}
	}

	next := tlstest.SelfSigned(t, dir, "next", "127.0.0.1")
	tlstest.Copy(t, next, live)
	tlstest.Write(t, keys, []byte("admin "+cliAdminKey+"\nadmin "+cliAppKey+"\n"))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(d.logs.String(), "config reloaded") })
	code, served, err := get(next.DER, "/v1/status", cliAppKey)
	if err != nil || code != 200 || !bytes.Equal(served, next.DER) {
		t.Errorf("after SIGHUP: %d, %v, new certificate %v; want 200 for the promoted key over the new certificate",
			code, err, bytes.Equal(served, next.DER))
	}
	if _, _, err := get(first, "/healthz", ""); err == nil {
		t.Error("a client trusting only the old certificate still connects")
	}
	for _, k := range []string{cliAdminKey, cliAppKey} {
		if strings.Contains(d.logs.String(), k) {
			t.Errorf("a key reached the log:\n%s", d.logs.String())
		}
	}
	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d\n%s", code, d.logs.String())
	}
}
