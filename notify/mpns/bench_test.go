package mpns_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// BenchmarkPush is one push over loopback: the request built from the
// notification, sent through pushhttp and classified; time and
// allocations per push, both sides included (the server runs in this
// process).
func BenchmarkPush(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-NotificationStatus", "Received")
		w.Header().Set("X-SubscriptionStatus", "Active")
		w.Header().Set("X-DeviceConnectionStatus", "Connected")
	}))
	defer srv.Close()
	payload, err := (&mpns.Encoder{}).EncodeToast(notify.Toast{Text1: "Hello", Text2: "World"})
	if err != nil {
		b.Fatal(err)
	}
	n := &tilecast.Notification{Kind: tilecast.KindToast, Payload: payload}
	ch := &tilecast.Channel{URI: srv.URL + "/throttledthirdparty/01.00/AQHgBxKxXv8cSYmBwXGWExAAAAADAQAAAAQUZm52"}
	cl, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true, Concurrency: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.ReportAllocs()
	for b.Loop() {
		if r := cl.Push(b.Context(), ch, n, 0); r.Verdict != tilecast.VerdictDelivered {
			b.Fatalf("push: %+v", r)
		}
	}
}
