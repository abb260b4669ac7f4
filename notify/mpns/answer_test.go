package mpns

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// emulatorAnswer is what the emulator (a Go server) answers a delivered toast.
const emulatorAnswer = "HTTP/1.1 200 OK\r\nX-Deviceconnectionstatus: Connected\r\nX-Notificationstatus: Received\r\n" +
	"X-Subscriptionstatus: Active\r\nDate: Fri, 27 Nov 2026 12:00:00 GMT\r\nContent-Length: 0\r\n\r\n"

func TestQuickAnswer(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		ok     bool
		status int
		close  bool
		left   int // bytes left in the reader after a quick answer
	}{
		{"emulator", emulatorAnswer, true, 200, false, 0},
		{"no reason", "HTTP/1.1 200\r\nX-NotificationStatus: Received\r\nContent-Length: 0\r\n\r\n", true, 200, false, 0},
		{"body", "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nX-SubscriptionStatus: Expired\r\n\r\nhello", true, 404, false, 0},
		{"close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n", true, 503, true, 0},
		{"keep-alive", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true, 200, false, 0},
		{"next answer buffered", emulatorAnswer + "HTTP/1.1 200 OK\r\n", true, 200, false, len("HTTP/1.1 200 OK\r\n")},
		{"204 without length", "HTTP/1.1 204 No Content\r\n\r\n", true, 204, false, 0},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, 0, false, 0},
		{"no length", "HTTP/1.1 200 OK\r\n\r\n", false, 0, false, 0},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, false, 0},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, false, 0},
		{"partial head", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false, 0, false, 0},
		{"partial body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, 0, false, 0},
		{"folded", "HTTP/1.1 200 OK\r\nX-NotificationStatus: Rec\r\n eived\r\nContent-Length: 0\r\n\r\n", false, 0, false, 0},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", false, 0, false, 0},
		{"big body", "HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", false, 0, false, 0},
		{"garbage", "garbage\r\n\r\n", false, 0, false, 0},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			if _, err := br.Peek(1); err != nil {
				t.Fatal(err)
			}
			a, closing, ok := quickAnswer(br)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				if br.Buffered() != len(tt.in) {
					t.Errorf("declined but consumed %d bytes", len(tt.in)-br.Buffered())
				}
				return
			}
			if a.status != tt.status || closing != tt.close || br.Buffered() != tt.left {
				t.Errorf("status %d close %v left %d, want %d %v %d", a.status, closing, br.Buffered(), tt.status, tt.close, tt.left)
			}
			checkLikeReadResponse(t, []byte(tt.in), a, closing, br.Buffered())
		})
	}
}

// checkLikeReadResponse requires ReadResponse to read in the same answer:
// status, header map, close flag, and where the next answer starts.
func checkLikeReadResponse(t *testing.T, in []byte, a answer, closing bool, left int) {
	t.Helper()
	sr := bytes.NewReader(in)
	br := bufio.NewReader(sr)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("quick answer accepted what ReadResponse refuses (%v): %q", err, in)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("ReadResponse body: %v: %q", err, in)
	}
	if resp.StatusCode != a.status || resp.Close != closing {
		t.Errorf("status %d close %v, ReadResponse %d %v: %q", a.status, closing, resp.StatusCode, resp.Close, in)
	}
	if !reflect.DeepEqual(resp.Header, a.header) {
		t.Errorf("header %v, ReadResponse %v: %q", a.header, resp.Header, in)
	}
	if slowLeft := br.Buffered() + sr.Len(); slowLeft != left {
		t.Errorf("%d bytes left, ReadResponse left %d: %q", left, slowLeft, in)
	}
}

// FuzzQuickAnswer: whatever quickAnswer accepts, ReadResponse reads the
// same way; whatever it declines, it leaves unread.
func FuzzQuickAnswer(f *testing.F) {
	f.Add([]byte(emulatorAnswer))
	f.Add([]byte("HTTP/1.1 412 Precondition Failed\r\nX-DeviceConnectionStatus: Inactive\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nHTTP/1.1"))
	f.Add([]byte("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-A:\t v \t\r\nx-a: w\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sr := bytes.NewReader(in)
		br := bufio.NewReaderSize(sr, 4<<10)
		if _, err := br.Peek(1); err != nil {
			return
		}
		buffered := br.Buffered()
		a, closing, ok := quickAnswer(br)
		if !ok {
			if br.Buffered() != buffered {
				t.Fatalf("declined but consumed %d bytes", buffered-br.Buffered())
			}
			return
		}
		checkLikeReadResponse(t, in, a, closing, br.Buffered()+sr.Len())
	})
}
