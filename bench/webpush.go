package bench

// The Web Push fan-out: channels are browsers' subscriptions, so a "URI"
// of a Web Push sink (Sink.URIs, the file the sink process writes) is the
// subscription's JSON as the browser gives it, one per line; the state
// stores its endpoint and keys as a registration would. The Bot's client
// and the bare loop both encrypt every message (RFC 8291: a fresh ECDH
// key and salt per message) and sign with VAPID (one token per push
// service, reused), through webpush.NewRequest: the crypto is part of
// both, and WebPushCryptoCost reports it on its own.

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/pushhttp"
	"github.com/tilecast/tilecast/notify/webpush"
)

// benchVAPIDSubject is the VAPID subject of the bench's pushes.
const benchVAPIDSubject = "mailto:bench@tilecast.dev"

// webPushSink fills s with n subscriptions and returns its handler: the
// emulator's browsers (each push checked, decrypted and applied), or a
// minimal service answering 201 to anything under /webpush/.
func webPushSink(kind string, s *Sink, n int) (http.Handler, error) {
	s.URIs = make([]string, n)
	switch kind {
	case SinkEmulator:
		em := emulator.New(emulator.Options{BaseURL: s.URL})
		for i := range n {
			br, err := em.CreateBrowser(emulator.Healthy, fmt.Sprintf("bench-%d", i))
			if err != nil {
				return nil, fmt.Errorf("sink browser: %w", err)
			}
			b, err := json.Marshal(br.Subscription)
			if err != nil {
				return nil, err
			}
			s.URIs[i] = string(b)
		}
		return em.Handler(), nil
	case SinkMinimal:
		// One browser key for all (the sender's work per message is the
		// same whichever key it encrypts for), an auth secret each.
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		p256dh := base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
		auth := make([]byte, webpush.AuthLen)
		for i := range n {
			rand.Read(auth)
			s.URIs[i] = fmt.Sprintf(`{"endpoint":"%s/webpush/ch%08d","expirationTime":null,"keys":{"p256dh":%q,"auth":%q}}`,
				s.URL, i, p256dh, base64.RawURLEncoding.EncodeToString(auth))
		}
		return http.HandlerFunc(minimalWebPush), nil
	}
	return nil, fmt.Errorf("unknown sink kind %q", kind)
}

// minimalWebPush drains the body and answers 201 Created, checking nothing.
func minimalWebPush(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusCreated)
}

// parseSubscription reads one Web Push sink "URI" (a subscription's JSON).
func parseSubscription(doc string) (webpush.Subscription, error) {
	sub, err := webpush.ParseSubscription([]byte(doc), webpush.ParseOptions{AllowLoopbackHTTP: true})
	if err != nil {
		return sub, fmt.Errorf("bench subscription: %w", err)
	}
	return sub, nil
}

// channelFor is the channel BuildFanOutStateFor stores for u: for Web
// Push the subscription u holds, else u itself.
func channelFor(u string, t tilecast.Transport) (tilecast.Channel, error) {
	if t != tilecast.TransportWebPush {
		return tilecast.Channel{URI: u, Transport: t}, nil
	}
	sub, err := parseSubscription(u)
	if err != nil {
		return tilecast.Channel{}, err
	}
	return sub.Channel(), nil
}

// benchSigner is a VAPID signer with a fresh key: the sinks accept any.
func benchSigner() (*webpush.Signer, error) {
	key, err := webpush.NewVAPIDKey()
	if err != nil {
		return nil, err
	}
	return webpush.NewSigner(key, benchVAPIDSubject, webpush.SignerOptions{})
}

// webPushPusher is the daemon's Web Push client with opts' concurrency.
func (opts FanOutOptions) webPushPusher() (tilecast.Pusher, func(), error) {
	signer, err := benchSigner()
	if err != nil {
		return nil, nil, err
	}
	c, err := webpush.NewClient(webpush.ClientOptions{VAPID: signer, AllowPrivate: true, Concurrency: opts.Concurrency})
	if err != nil {
		return nil, nil, err
	}
	return tilecast.NewPushMux(map[tilecast.Transport]tilecast.Pusher{tilecast.TransportWebPush: c}, tilecast.PushMuxOptions{}), c.Close, nil
}

// webPushPoster returns the bare loop's POST of a Web Push message: the
// subscriptions are parsed before the loop starts (the Bot reads them
// from its state as part of its run), then each request is built by
// webpush.NewRequest with the headers the Bot's client sends (TTL of the
// kind's default time to live, the kind's default Urgency, a tile's Topic
// from its feed), encrypted and signed, and must be answered 201.
func webPushPoster(uris []string) (func(ctx context.Context, c *pushhttp.Client, uri string, n *tilecast.Notification) error, error) {
	subs := make(map[string]webpush.Subscription, len(uris))
	for _, u := range uris {
		sub, err := parseSubscription(u)
		if err != nil {
			return nil, err
		}
		subs[u] = sub
	}
	signer, err := benchSigner()
	if err != nil {
		return nil, err
	}
	ttl := tilecast.DefaultTTL()
	return func(ctx context.Context, c *pushhttp.Client, uri string, n *tilecast.Notification) error {
		sub := subs[uri]
		opts := webpush.RequestOptions{VAPID: signer}
		if n.Kind == tilecast.KindTile || n.Kind == tilecast.KindBadge {
			opts.Topic = webpush.TopicFor(n.Feed)
		}
		req, err := webpush.NewRequest(sub, n.Kind, n.Payload, ttl.Of(n.Kind), opts)
		if err != nil {
			return err
		}
		resp, err := c.Do(ctx, req)
		if err != nil {
			return fmt.Errorf("raw push %s: %w", sub.Endpoint, err)
		}
		if resp.Status != http.StatusCreated {
			return fmt.Errorf("raw push %s: %d", sub.Endpoint, resp.Status)
		}
		return nil
	}, nil
}

// CryptoCost is what the crypto of one Web Push notification costs, in
// one goroutine.
type CryptoCost struct {
	Encrypt time.Duration // aes128gcm of one payload: ECDH, HKDF, AES-GCM
	// Authorization is the VAPID header as sent: the token signed once
	// per push service and reused, so this is mostly a cache lookup.
	Authorization time.Duration
	Sign          time.Duration // one ES256 token, made once per push service per ~12 h
}

// WebPushCryptoCost measures the crypto of ns (RawNotificationsFor) for
// the subscription sub (a Web Push sink "URI") over rounds rounds.
func WebPushCryptoCost(sub string, ns []tilecast.Notification, rounds int) (CryptoCost, error) {
	s, err := parseSubscription(sub)
	if err != nil {
		return CryptoCost{}, err
	}
	rounds = max(rounds, 1)
	var c CryptoCost
	t0 := time.Now()
	for range rounds {
		for i := range ns {
			if _, err := webpush.Encrypt(s, ns[i].Payload, webpush.EncryptOptions{}); err != nil {
				return c, err
			}
		}
	}
	c.Encrypt = time.Since(t0) / time.Duration(rounds*len(ns))
	signer, err := benchSigner()
	if err != nil {
		return c, err
	}
	t0 = time.Now()
	for range rounds * len(ns) {
		if _, err := signer.Authorization(s.Endpoint); err != nil {
			return c, err
		}
	}
	c.Authorization = time.Since(t0) / time.Duration(rounds*len(ns))
	t0 = time.Now()
	for range rounds {
		fresh, err := benchSigner() // a new signer: no cached token
		if err != nil {
			return c, err
		}
		if _, err := fresh.Authorization(s.Endpoint); err != nil {
			return c, err
		}
	}
	// Less the key generation the fresh signer needed.
	t1 := time.Now()
	for range rounds {
		if _, err := webpush.NewVAPIDKey(); err != nil {
			return c, err
		}
	}
	c.Sign = max(t1.Sub(t0)-time.Since(t1), 0) / time.Duration(rounds)
	return c, nil
}
