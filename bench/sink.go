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

	"github.com/tilecast/tilecast/emulator"
)

// Sink is a loopback MPNS endpoint that the fan-out pushes to.
type Sink struct {
	URL  string   // base URL, http://127.0.0.1:port
	URIs []string // one channel URI per channel, in creation order

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

// StartSink listens on 127.0.0.1:0 and creates n healthy channels.
func StartSink(kind string, n int) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink listen: %w", err)
	}
	s := &Sink{URL: "http://" + ln.Addr().String(), ln: ln}
	var h http.Handler
	switch kind {
	case SinkEmulator:
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
	case SinkMinimal:
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
			if strings.Contains(r.URL.Path, "thirdparty/") {
				defer s.received.Add(1)
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func minimalPush(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h["X-NotificationStatus"] = []string{"Received"}
	h["X-SubscriptionStatus"] = []string{"Active"}
	h["X-DeviceConnectionStatus"] = []string{"Connected"}
	w.WriteHeader(http.StatusOK)
}
