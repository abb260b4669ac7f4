package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
)

// The WNS credentials of the bench's sinks: the emulator's token endpoint
// accepts them (the minimal sink accepts anything).
const (
	BenchWNSClientID = "ms-app://s-1-15-2-tilecast-bench"
	BenchWNSSecret   = "tilecast-bench-secret"
)

// Sink is a loopback MPNS, WNS or Web Push endpoint that the fan-out pushes to.
type Sink struct {
	URL  string   // base URL, http://127.0.0.1:port
	URIs []string // one channel URI per channel, in creation order
	// TokenURL is a WNS sink's token endpoint (TokenURLOf).
	TokenURL string

	received atomic.Int64
	srv      *http.Server
	ln       net.Listener
}

// Received is the number of pushes answered so far.
func (s *Sink) Received() int64 { return s.received.Load() }

// Close stops the server.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Sink kinds.
const (
	SinkEmulator = "emulator" // the full emulator: parses and applies every push
	SinkMinimal  = "minimal"  // drains the body and answers 200 Received
)

// TokenURLOf returns the WNS token endpoint of the sink a channel URI of
// it points at: both sinks serve it at the emulator's classic path.
func TokenURLOf(uri string) string {
	if i := strings.Index(uri, "://"); i >= 0 {
		if j := strings.IndexByte(uri[i+3:], '/'); j >= 0 {
			return uri[:i+3+j] + emulator.WNSClassicTokenPath
		}
	}
	return uri + emulator.WNSClassicTokenPath
}

// StartSink listens on 127.0.0.1:0 and creates n healthy MPNS channels.
func StartSink(kind string, n int) (*Sink, error) {
	return StartSinkFor(kind, tilecast.TransportMPNS, n)
}

// StartSinkFor is StartSink for channels of transport t (MPNS; WNS: n
// Windows devices, with a token endpoint for BenchWNSClientID; Web Push: n
// browsers, whose URIs are their subscriptions' JSON).
func StartSinkFor(kind string, t tilecast.Transport, n int) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink listen: %w", err)
	}
	s := &Sink{URL: "http://" + ln.Addr().String(), ln: ln}
	var h http.Handler
	wnsSink := t == tilecast.TransportWNS
	if wnsSink {
		s.TokenURL = s.URL + emulator.WNSClassicTokenPath
	}
	switch {
	case t == tilecast.TransportWebPush:
		if h, err = webPushSink(kind, s, n); err != nil {
			_ = ln.Close()
			return nil, err
		}
	case kind == SinkEmulator && wnsSink:
		em := emulator.New(emulator.Options{BaseURL: s.URL, WNSClientID: BenchWNSClientID, WNSClientSecret: []byte(BenchWNSSecret)})
		s.URIs = make([]string, n)
		for i := range n {
			d, err := em.CreateWindowsDevice(emulator.Healthy, fmt.Sprintf("bench-%d", i))
			if err != nil {
				_ = ln.Close()
				return nil, fmt.Errorf("sink device: %w", err)
			}
			s.URIs[i] = d.URI
		}
		h = em.Handler()
	case kind == SinkMinimal && wnsSink:
		s.URIs = make([]string, n)
		for i := range n {
			s.URIs[i] = fmt.Sprintf("%s/w/?token=ch%08d", s.URL, i)
		}
		h = http.HandlerFunc(minimalWNS)
	case kind == SinkEmulator:
		em := emulator.New(emulator.Options{BaseURL: s.URL})
		s.URIs = make([]string, n)
		for i := range n {
			ch, err := em.CreateChannel(emulator.Healthy, fmt.Sprintf("bench-%d", i))
			if err != nil {
				_ = ln.Close()
				return nil, fmt.Errorf("sink channel: %w", err)
			}
			s.URIs[i] = ch.URI
		}
		h = em.Handler()
	case kind == SinkMinimal:
		s.URIs = make([]string, n)
		for i := range n {
			s.URIs[i] = fmt.Sprintf("%s/throttledthirdparty/01.00/ch%08d", s.URL, i)
		}
		h = http.HandlerFunc(minimalPush)
	default:
		_ = ln.Close()
		return nil, fmt.Errorf("unknown sink kind %q", kind)
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "thirdparty/") || r.URL.Path == "/w/" || strings.HasPrefix(r.URL.Path, "/webpush/") {
				defer s.received.Add(1)
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// minimalWNS answers a token request with a token and a push with 200
// received, checking nothing.
func minimalWNS(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Path == emulator.WNSClassicTokenPath {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = io.WriteString(w, `{"access_token":"bench-token","token_type":"bearer","expires_in":86400}`)
		return
	}
	h := w.Header()
	h["X-WNS-Status"] = []string{"received"}
	h["X-WNS-Msg-ID"] = []string{"1A2B3C4D5E6F7A8B"}
	w.WriteHeader(http.StatusOK)
}

func minimalPush(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h["X-NotificationStatus"] = []string{"Received"}
	h["X-SubscriptionStatus"] = []string{"Active"}
	h["X-DeviceConnectionStatus"] = []string{"Connected"}
	w.WriteHeader(http.StatusOK)
}
