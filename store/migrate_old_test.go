package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// The old record forms (migrate_old.go), written byte for byte as the
// encoders before schema 4 wrote them: the migration tests fill files
// with them, and the decoders of old forms are tested against them.

func oldStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func oldTimeBytes(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// oldChannelRecord is ch's version 1 record.
func oldChannelRecord(ch *tilecast.Channel) []byte {
	dst := []byte{oldChannelV1}
	dst = oldStr(dst, ch.ID)
	dst = oldStr(dst, ch.URI)
	dst = oldStr(dst, ch.User)
	dst = binary.AppendUvarint(dst, uint64(len(ch.Feeds)))
	for _, f := range ch.Feeds {
		dst = oldStr(dst, f)
	}
	dst = oldStr(dst, ch.Device)
	dst = oldTimeBytes(dst, ch.Created)
	dst = oldStr(dst, ch.LastOutcome)
	dst = oldTimeBytes(dst, ch.LastOutcomeAt)
	dst = binary.AppendVarint(dst, int64(ch.FailureStreak))
	dst = oldTimeBytes(dst, ch.NextAllowedAt)
	dst = oldStr(dst, ch.SendsDay)
	return binary.AppendVarint(dst, int64(ch.SendsToday))
}

func oldItemBytes(dst []byte, it *tilecast.Item) []byte {
	dst = oldStr(dst, it.ID)
	dst = oldStr(dst, it.Title)
	dst = oldStr(dst, it.Link)
	dst = oldStr(dst, it.Summary)
	dst = oldTimeBytes(dst, it.Published)
	return oldStr(dst, it.Image)
}

// oldFeedStateRecord is st's version 1 record.
func oldFeedStateRecord(st *tilecast.FeedState) []byte {
	dst := []byte{oldFeedStateV1}
	dst = oldStr(dst, st.ETag)
	dst = oldStr(dst, st.LastModified)
	var flags byte
	if st.Baselined {
		flags |= oldFeedBaselined
	}
	if st.Broken {
		flags |= oldFeedBroken
	}
	if st.Latest != nil {
		flags |= oldFeedHasLatest
	}
	dst = append(dst, flags)
	dst = oldTimeBytes(dst, st.LastFetch)
	dst = oldStr(dst, st.LastResult)
	dst = oldTimeBytes(dst, st.LastSuccess)
	dst = binary.AppendVarint(dst, int64(st.Failures))
	dst = oldTimeBytes(dst, st.FailingSince)
	dst = oldTimeBytes(dst, st.NextFetch)
	dst = oldStr(dst, st.Title)
	dst = oldStr(dst, st.Link)
	dst = oldTimeBytes(dst, st.SeenRefreshed)
	if l := st.Latest; l != nil {
		dst = oldStr(dst, l.Feed.Name)
		dst = oldStr(dst, l.Feed.Title)
		dst = oldStr(dst, l.Feed.Link)
		dst = oldItemBytes(dst, &l.Item)
		dst = binary.AppendUvarint(dst, uint64(len(l.Items)))
		for i := range l.Items {
			dst = oldItemBytes(dst, &l.Items[i])
		}
		dst = binary.AppendVarint(dst, int64(l.NewCount))
		dst = oldStr(dst, l.User)
	}
	return dst
}

// oldOutcomeRecord is o's version 1 ledger value.
func oldOutcomeRecord(o *tilecast.Outcome) []byte {
	dst := []byte{oldOutcomeV1}
	dst = oldTimeBytes(dst, o.Time)
	dst = oldStr(dst, o.ChannelID)
	dst = oldStr(dst, o.User)
	dst = oldStr(dst, o.Feed)
	dst = oldStr(dst, o.ItemID)
	dst = oldStr(dst, string(o.Kind))
	dst = binary.AppendVarint(dst, int64(o.Status))
	dst = oldStr(dst, o.Notification)
	dst = oldStr(dst, o.Subscription)
	dst = oldStr(dst, o.Device)
	dst = oldStr(dst, string(o.Action))
	dst = binary.AppendVarint(dst, int64(o.Attempt))
	dst = binary.AppendVarint(dst, int64(o.RetryIn))
	dst = binary.AppendVarint(dst, int64(o.Duration))
	return oldStr(dst, o.Error)
}

// legacyRequest is a request as outbox versions 1 and 2 stored it: uvarint
// header count, str name and str value per header, str body.
func legacyRequest(headers [][2]string, body []byte) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(headers)))
	for _, h := range headers {
		b = oldStr(b, h[0])
		b = oldStr(b, h[1])
	}
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

// legacyHeaders are the MPNS headers of an old toast record.
var legacyHeaders = [][2]string{{"Content-Type", "text/xml"}, {"Content-Length", "3"}, {"Accept", "application/*"},
	{"X-NotificationClass", "2"}, {"X-WindowsPhone-Target", "toast"}}

func legacyHead(version byte, n *tilecast.Notification) []byte {
	b := []byte{version}
	b = binary.AppendUvarint(b, n.ID)
	for _, s := range []string{n.ChannelID, n.Feed, n.User, n.ItemID, string(n.Kind)} {
		b = oldStr(b, s)
	}
	return b
}

func legacyTail(b []byte, n *tilecast.Notification) []byte {
	b = binary.AppendVarint(b, int64(n.Attempts))
	b = oldTimeBytes(b, n.NextAttempt)
	return oldTimeBytes(b, n.Created)
}

// legacyV1Record is an outbox record version 1: n with its request inline.
func legacyV1Record(n tilecast.Notification, headers [][2]string) []byte {
	b := legacyHead(oldRecordV1, &n)
	b = append(b, legacyRequest(headers, n.Payload)...)
	return legacyTail(b, &n)
}

// legacyV2Record is an outbox record version 2: n referencing a stored request.
func legacyV2Record(n tilecast.Notification, k payloadKey) []byte {
	b := legacyHead(oldRecordV2, &n)
	b = append(b, k[:]...)
	return legacyTail(b, &n)
}

// legacyV3Record is an outbox record version 3: n's payload inline, or the
// key of a stored payload when ref is not nil.
func legacyV3Record(n tilecast.Notification, ref *payloadKey) []byte {
	b := legacyHead(oldRecordV3, &n)
	if ref != nil {
		b = append(b, oldPayloadShared)
		b = append(b, ref[:]...)
	} else {
		b = append(b, oldPayloadInline)
		b = oldStr(b, string(n.Payload))
	}
	return legacyTail(b, &n)
}

// v1Record is an outbox record version 1, byte for byte as the encoder
// before shared payloads wrote it; such files are in the field.
var v1Record = []byte{
	1, 1, // version, ID
	2, 'c', '1', 4, 'n', 'e', 'w', 's', 0, 0, 5, 't', 'o', 'a', 's', 't', // channel, feed, user, item, kind
	1, 12, 'C', 'o', 'n', 't', 'e', 'n', 't', '-', 'T', 'y', 'p', 'e', 8, 't', 'e', 'x', 't', '/', 'x', 'm', 'l', // headers
	3, '<', 'a', '>', // body
	4,                                     // attempts 2 (zigzag)
	1, 0x80, 0xa9, 0xa1, 0x9a, 0x0d, 0x7b, // next attempt 2026-03-01 12:00:00.000000123 UTC
	0, // created: zero
}

// The version 1 channel layout, byte by byte, as migrate_old.go documents it.
func TestDecodeOldChannelGolden(t *testing.T) {
	ch := tilecast.Channel{
		ID: "ab", URI: "http://h", User: "u", Feeds: []string{"n", "é"},
		Created:       time.Unix(1, 5),
		LastOutcome:   "retry",
		FailureStreak: -2,
		NextAllowedAt: time.Unix(300, 0),
		SendsDay:      "2026-03-01", SendsToday: 64,
	}
	want := slices.Concat(
		[]byte{1},                // version
		[]byte("\x02ab"),         // ID
		[]byte("\x08http://h"),   // URI
		[]byte("\x01u"),          // User
		[]byte("\x02\x01n\x02é"), // Feeds: count, then each
		[]byte{0},                // Device ""
		[]byte{1, 2, 5},          // Created: tag, zigzag(1), 5 ns
		[]byte("\x05retry"),      // LastOutcome
		[]byte{0},                // LastOutcomeAt: zero
		[]byte{3},                // FailureStreak: zigzag(-2)
		[]byte{1, 0xd8, 0x04, 0}, // NextAllowedAt: zigzag(300) = 600, 0 ns
		[]byte("\x0a2026-03-01"), // SendsDay
		[]byte{0x80, 0x01},       // SendsToday: zigzag(64) = 128
	)
	if got := oldChannelRecord(&ch); !bytes.Equal(got, want) {
		t.Fatalf("X% x\nwant\n% x", got, want)
	}
	dec, err := decodeOldChannel(want)
	if err != nil || !codecSame(dec, ch) || !codecUTCTimes(dec) {
		t.Fatalf("decodeOldChannel = %+v, %v; want %+v", dec, err, ch)
	}
}

// Channel records written as JSON (json.Marshal of the Channel) read.
func TestDecodeOldChannelJSON(t *testing.T) {
	full := tilecast.Channel{
		ID: "0123456789abcdef", URI: "https://db3.notify.live.net/x?a=1&b=2", User: "ana",
		Feeds: []string{"news", "inbox"}, Device: "phone-1",
		Created:     time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC),
		LastOutcome: "delivered", LastOutcomeAt: time.Date(2026, 3, 2, 1, 2, 3, 0, time.FixedZone("", 3600)),
		FailureStreak: 3, NextAllowedAt: time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC),
		SendsDay: "2026-03-02", SendsToday: 17,
	}
	marshalled, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  string
		want tilecast.Channel
	}{
		{"marshalled", string(marshalled), full},
		// Verbatim as the JSON encoder wrote it, so a change to the
		// struct tags cannot silently drop old fields.
		{"verbatim", `{"id":"c1","uri":"http://127.0.0.1/a","user":"bo","feeds":["news"],"device":"d",` +
			`"created":"2026-03-01T12:00:00Z","last_outcome":"retry","last_outcome_at":"2026-03-01T13:00:00.5+01:00",` +
			`"failure_streak":2,"next_allowed_at":"2026-03-01T14:00:00Z","sends_day":"2026-03-01","sends_today":4}`,
			tilecast.Channel{ID: "c1", URI: "http://127.0.0.1/a", User: "bo", Feeds: []string{"news"}, Device: "d",
				Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), LastOutcome: "retry",
				LastOutcomeAt: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC), FailureStreak: 2,
				NextAllowedAt: time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC), SendsDay: "2026-03-01", SendsToday: 4}},
		{"minimal", `{"id":"c2","uri":"http://127.0.0.1/b","created":"2026-03-01T12:00:00Z"}`,
			tilecast.Channel{ID: "c2", URI: "http://127.0.0.1/b", Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeOldChannel([]byte(tt.rec))
			if err != nil || !codecSame(got, tt.want) {
				t.Fatalf("decodeOldChannel = %+v, %v; want %+v", got, err, tt.want)
			}
			// Rewritten in the current form it is still the same channel.
			bin, err := decodeChannel(encodeChannel(&got))
			if err != nil || !codecSame(bin, tt.want) {
				t.Fatalf("after re-encoding: %+v, %v", bin, err)
			}
		})
	}
}

func TestDecodeOldChannelErrors(t *testing.T) {
	valid := oldChannelRecord(&tilecast.Channel{ID: "a", URI: "u", Created: time.Unix(5, 0)})
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{3}, valid[1:]...), "unknown version 3"},
		{"json array", []byte(`[1]`), "unknown version 91"},
		{"bad json", []byte(`{"id":`), "unexpected end of JSON input"},
		{"json wrong type", []byte(`{"failure_streak":"x"}`), "cannot unmarshal string"},
		{"version only", []byte{oldChannelV1}, "truncated varint at byte 1"},
		{"truncated", valid[:len(valid)-1], "truncated varint"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes"},
		{"overlong string length", slices.Concat([]byte{1, 0x81, 0x00}, valid[2:]), "overlong varint at byte 3"},
		{"string past end", []byte{1, 0x7f, 'a'}, "length past end"},
		{"varint overflow", slices.Concat([]byte{1}, bytes.Repeat([]byte{0xff}, 10)), "varint overflow"},
		{"huge feed count", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "feed count past end"},
		{"bad time tag", []byte{1, 0, 0, 0, 0, 0, 7}, "bad time tag at byte 7"},
		{"nanoseconds out of range", slices.Concat([]byte{1, 0, 0, 0, 0, 0, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},
			make([]byte, 6)), "nanoseconds out of range"},
		{"zero time with tag 1", slices.Concat([]byte{1, 0, 0, 0, 0, 0, 1},
			binary.AppendVarint(nil, time.Time{}.Unix()), make([]byte, 7)), "zero time with tag 1"},
	}
	testDecodeErrorsOf(t, "channel", decodeOldChannel, tests, true)
}

// The version 1 feed state layout, byte by byte.
func TestDecodeOldFeedStateGolden(t *testing.T) {
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"e"`, LastModified: "lm"},
		Baselined:  true, LastFetch: time.Unix(2, 0), LastResult: "ok", Failures: -1,
		Title: "T", SeenRefreshed: time.Unix(3, 7),
		Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "n"}, Item: tilecast.Item{ID: "i"},
			Items: []tilecast.Item{{Title: "x"}}, NewCount: 1, User: "u"},
	}
	want := slices.Concat(
		[]byte{1},                 // version
		[]byte("\x03\"e\"\x02lm"), // ETag, LastModified
		[]byte{oldFeedBaselined | oldFeedHasLatest}, // flags
		[]byte{1, 4, 0},                     // LastFetch
		[]byte("\x02ok"),                    // LastResult
		[]byte{0},                           // LastSuccess
		[]byte{1},                           // Failures -1
		[]byte{0, 0},                        // FailingSince, NextFetch
		[]byte("\x01T\x00"),                 // Title, Link
		[]byte{1, 6, 7},                     // SeenRefreshed
		[]byte("\x01n\x00\x00"),             // Feed
		[]byte("\x01i\x00\x00\x00\x00\x00"), // Item
		[]byte{1},                           // one item
		[]byte("\x00\x01x\x00\x00\x00\x00"), // Items[0]
		[]byte{2},                           // NewCount 1
		[]byte("\x01u"),                     // User
	)
	if got := oldFeedStateRecord(&st); !bytes.Equal(got, want) {
		t.Fatalf("oldFeedStateRecord =\n% x\nwant\n% x", got, want)
	}
	got, err := decodeOldFeedState(want)
	if err != nil || !reflect.DeepEqual(got, normFeedState(st)) {
		t.Fatalf("decodeOldFeedState = %+v, %v; want %+v", got, err, st)
	}
}

// Feed states written as JSON read, and read the same after being
// rewritten in the current form.
func TestDecodeOldFeedStateJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("", -3600))
	full := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"v1"`, LastModified: "Sun, 01 Mar 2026 10:00:00 GMT"},
		Baselined:  true, LastFetch: at, LastResult: "ok", LastSuccess: at.Add(-time.Hour), Failures: 3,
		FailingSince: at.Add(-2 * time.Hour), Broken: true, NextFetch: at.Add(time.Hour),
		Title: "Ünïcode", Link: "https://e/", SeenRefreshed: at,
		Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "news", Title: "News", Link: "https://e/"},
			Item:  tilecast.Item{ID: "g1", Title: "One", Published: time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)},
			Items: []tilecast.Item{{ID: "g1"}, {ID: "g0", Image: "https://e/i.png"}}, NewCount: 2, User: "ana"},
	}
	marshalled, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  string
		want tilecast.FeedState
	}{
		{"marshalled", string(marshalled), full},
		// Verbatim as the JSON encoder wrote it.
		{"verbatim", `{"ETag":"\"x\"","LastModified":"Sun, 01 Mar 2026 10:00:00 GMT","baselined":true,` +
			`"last_fetch":"2026-03-01T12:00:00+01:00","last_result":"ok","failures":2,"next_fetch":"2026-03-01T13:00:00Z",` +
			`"title":"T","seen_refreshed":"2026-03-01T11:00:00Z","latest":{"Feed":{"Name":"n","Title":"T","Link":""},` +
			`"Item":{"ID":"i","Title":"t","Link":"l","Summary":"s","Published":"2026-03-01T10:00:00Z","Image":""},` +
			`"Items":null,"NewCount":1,"User":""}}`,
			tilecast.FeedState{Validators: tilecast.Validators{ETag: `"x"`, LastModified: "Sun, 01 Mar 2026 10:00:00 GMT"},
				Baselined: true, LastFetch: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), LastResult: "ok", Failures: 2,
				NextFetch: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC), Title: "T",
				SeenRefreshed: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
				Latest: &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "n", Title: "T"},
					Item:     tilecast.Item{ID: "i", Title: "t", Link: "l", Summary: "s", Published: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
					NewCount: 1}}},
		{"minimal", `{"baselined":false}`, tilecast.FeedState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeOldFeedState([]byte(tt.rec))
			if err != nil {
				t.Fatal(err)
			}
			want := normFeedState(tt.want)
			if !reflect.DeepEqual(normFeedState(got), want) {
				t.Fatalf("decodeOldFeedState =\n%+v\nwant\n%+v", got, want)
			}
			bin, err := decodeFeedState(encodeFeedState(&got))
			if err != nil || !reflect.DeepEqual(bin, want) {
				t.Fatalf("after re-encoding: %+v, %v", bin, err)
			}
		})
	}
}

func TestDecodeOldFeedStateErrors(t *testing.T) {
	valid := oldFeedStateRecord(&tilecast.FeedState{Baselined: true, Latest: &tilecast.TemplateData{NewCount: 1}})
	// Up to the flags byte: version, ETag "", LastModified "".
	head := []byte{1, 0, 0}
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{3}, valid[1:]...), "unknown version 3"},
		{"bad json", []byte(`{"baselined":`), "unexpected end of JSON input"},
		{"json wrong type", []byte(`{"failures":"x"}`), "cannot unmarshal string"},
		{"version only", []byte{oldFeedStateV1}, "truncated varint at byte 1"},
		{"truncated", valid[:len(valid)-1], "truncated varint"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes"},
		{"unknown flag", slices.Concat(head, []byte{8}, valid[4:]), "unknown flags"},
		{"bad time tag", slices.Concat(head, []byte{0, 9}), "bad time tag at byte 5"},
		{"huge item count", slices.Concat(head, []byte{oldFeedHasLatest, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			[]byte{0, 0, 0}, []byte{0, 0, 0, 0, 0, 0}, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}), "item count past end"},
	}
	testDecodeErrorsOf(t, "feed state", decodeOldFeedState, tests, true)
}

// The version 1 ledger layout, byte by byte.
func TestDecodeOldOutcomeGolden(t *testing.T) {
	o := tilecast.Outcome{
		Time: time.Unix(1, 5), ChannelID: "ab", Feed: "news", ItemID: "é",
		Kind: tilecast.KindTile, Status: 503, Notification: "QueueFull", Subscription: "Active",
		Action: tilecast.ActionRetry, Attempt: 2, RetryIn: -3, Duration: 150 * time.Millisecond,
		Error: "x",
	}
	want := slices.Concat(
		[]byte{1},                            // version
		[]byte{1, 2, 5},                      // Time: tag, zigzag(1), 5 ns
		[]byte("\x02ab"),                     // ChannelID
		[]byte{0},                            // User ""
		[]byte("\x04news"),                   // Feed
		[]byte("\x02é"),                      // ItemID: two UTF-8 bytes
		[]byte("\x04tile"),                   // Kind
		[]byte{0xee, 0x07},                   // Status: zigzag(503) = 1006
		[]byte("\x09QueueFull"),              // Notification
		[]byte("\x06Active"),                 // Subscription
		[]byte{0},                            // Device ""
		[]byte("\x05retry"),                  // Action
		[]byte{4},                            // Attempt: zigzag(2)
		[]byte{5},                            // RetryIn: zigzag(-3 ns)
		[]byte{0x80, 0xc6, 0x86, 0x8f, 0x01}, // Duration: zigzag(150e6 ns) = 300e6
		[]byte("\x01x"),                      // Error
	)
	if got := oldOutcomeRecord(&o); !bytes.Equal(got, want) {
		t.Fatalf("oldOutcomeRecord =\n% x\nwant\n% x", got, want)
	}
	dec, err := decodeOldOutcome(want)
	if err != nil || !outcomeSame(dec, o) || !outcomeUTCTime(dec) {
		t.Fatalf("decodeOldOutcome = %+v, %v; want %+v", dec, err, o)
	}
}

// Ledger values written as JSON (json.Marshal of the Outcome) read.
func TestDecodeOldOutcomeJSON(t *testing.T) {
	full := tilecast.Outcome{
		Time:      time.Date(2026, 3, 1, 12, 0, 0, 123, time.FixedZone("", 3600)),
		ChannelID: "0123456789abcdef", User: "ana", Feed: "news", ItemID: "item-ü",
		Kind: tilecast.KindToast, Status: 200, Notification: "Received", Subscription: "Active",
		Device: "Connected", Action: tilecast.ActionDelivered, Attempt: 1,
		RetryIn: -time.Second, Duration: 87 * time.Millisecond, Error: "",
	}
	marshalled, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  string
		want tilecast.Outcome
	}{
		{"marshalled", string(marshalled), full},
		{"verbatim", `{"time":"2026-03-01T13:00:00.5+01:00","channel":"c1","user":"bo","feed":"news",` +
			`"item":"i1","kind":"tile","status":503,"notification":"QueueFull","subscription":"Active",` +
			`"device":"TempDisconnected","outcome":"retry","attempt":2,"retry_in":60000000000,` +
			`"duration":1500000,"error":"503 Service Unavailable"}`,
			tilecast.Outcome{Time: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC), ChannelID: "c1", User: "bo",
				Feed: "news", ItemID: "i1", Kind: tilecast.KindTile, Status: 503, Notification: "QueueFull",
				Subscription: "Active", Device: "TempDisconnected", Action: tilecast.ActionRetry, Attempt: 2,
				RetryIn: time.Minute, Duration: 1500 * time.Microsecond, Error: "503 Service Unavailable"}},
		{"minimal", `{"time":"2026-03-01T12:00:00Z","channel":"c2","feed":"f","kind":"raw","status":0,` +
			`"outcome":"failed","attempt":0,"duration":0}`,
			tilecast.Outcome{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), ChannelID: "c2", Feed: "f",
				Kind: tilecast.KindRaw, Action: tilecast.ActionFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeOldOutcome([]byte(tt.rec))
			if err != nil || !outcomeSame(got, tt.want) {
				t.Fatalf("decodeOldOutcome = %+v, %v; want %+v", got, err, tt.want)
			}
			bin, err := decodeOutcome(encodeOutcome(&got))
			if err != nil || !outcomeSame(bin, tt.want) {
				t.Fatalf("after re-encoding: %+v, %v", bin, err)
			}
		})
	}
}

func TestDecodeOldOutcomeErrors(t *testing.T) {
	valid := oldOutcomeRecord(&tilecast.Outcome{ChannelID: "a"})
	tests := []decodeErrCase{
		{"empty", nil, ": empty"},
		{"unknown version", append([]byte{3}, valid[1:]...), "unknown version 3"},
		{"json array", []byte(`[1]`), "unknown version 91"},
		{"bad json", []byte(`{"channel":`), "unexpected end of JSON input"},
		{"json wrong type", []byte(`{"duration":"1s"}`), "cannot unmarshal string"},
		{"version only", []byte{oldOutcomeV1}, "truncated at byte 1"},
		{"truncated", valid[:len(valid)-1], "truncated varint"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes"},
		{"overlong string length", []byte{1, 0, 0x81, 0x00}, "overlong varint at byte 4"},
		{"string past end", []byte{1, 0, 0x7f, 'a'}, "length past end"},
		{"bad time tag", slices.Concat([]byte{1, 7}, valid[2:]), "bad time tag at byte 2"},
		{"nanoseconds out of range", slices.Concat([]byte{1, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}, valid[2:]),
			"nanoseconds out of range"},
		{"zero time with tag 1", slices.Concat([]byte{1, 1}, binary.AppendVarint(nil, time.Time{}.Unix()), []byte{0}, valid[2:]),
			"zero time with tag 1"},
	}
	testDecodeErrorsOf(t, "outcome", decodeOldOutcome, tests, true)
}

// Outbox records of versions 1 to 3: their body is the payload, their
// headers (which followed from the kind) are dropped; a version 2 record
// names a stored request.
func TestDecodeOldEntries(t *testing.T) {
	want := tilecast.Notification{
		ID: 1, ChannelID: "c1", Feed: "news", Kind: tilecast.KindToast, Payload: []byte("<a>"),
		Attempts: 2, NextAttempt: time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC),
	}
	o, err := decodeOldEntry(v1Record)
	if err != nil {
		t.Fatal(err)
	}
	if o.e.hasRef || o.requestRef || !reflect.DeepEqual(o.e.n, want) {
		t.Errorf("version 1: %+v, want %+v", o, want)
	}
	if got, err := decodeOldEntry(legacyV1Record(want, legacyHeaders)); err != nil || !reflect.DeepEqual(got.e.n, want) {
		t.Errorf("version 1 with MPNS headers: %+v, %v", got.e.n, err)
	}
	k := payloadKey(sha256.Sum256(legacyRequest(legacyHeaders, []byte("<a>"))))
	o, err = decodeOldEntry(legacyV2Record(want, k))
	if err != nil {
		t.Fatal(err)
	}
	shared := want
	shared.Payload = nil
	if !o.e.hasRef || !o.requestRef || o.e.ref != k || !reflect.DeepEqual(o.e.n, shared) {
		t.Errorf("version 2: %+v, want %+v with request key %x", o, shared, k[:4])
	}
	if o, err = decodeOldEntry(legacyV3Record(want, nil)); err != nil || o.e.hasRef || !reflect.DeepEqual(o.e.n, want) {
		t.Errorf("version 3 inline: %+v, %v", o, err)
	}
	pk := payloadKeyOf([]byte("<a>"))
	if o, err = decodeOldEntry(legacyV3Record(want, &pk)); err != nil || !o.e.hasRef || o.requestRef || o.e.ref != pk ||
		!reflect.DeepEqual(o.e.n, shared) {
		t.Errorf("version 3 shared: %+v, %v", o, err)
	}
	// Rewritten in the current form an entry keeps payload or key.
	for _, v := range [][]byte{v1Record, legacyV3Record(want, &pk)} {
		o, _ := decodeOldEntry(v)
		if again, err := decodeEntry(encodeEntry(nil, &o.e)); err != nil || !reflect.DeepEqual(again, o.e) {
			t.Errorf("rewritten: %+v, %v; want %+v", again, err, o.e)
		}
	}
	bad := map[string][]byte{
		"empty":           nil,
		"version 4":       append([]byte{4}, v1Record[1:]...),
		"v3 bad form":     bytes.Replace(legacyV3Record(want, nil), []byte{5, 't', 'o', 'a', 's', 't', oldPayloadInline}, []byte{5, 't', 'o', 'a', 's', 't', 7}, 1),
		"v2 short key":    append(legacyV2Record(tilecast.Notification{}, payloadKey{})[:7], 0, 0),
		"truncated":       v1Record[:len(v1Record)-1],
		"trailing":        append(bytes.Clone(v1Record), 0),
		"v1 header count": {1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"string past end": {3, 0, 50, 'a'},
		"time tag":        {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0},
		"json":            []byte(`{"id":1}`),
	}
	for name, b := range bad {
		if o, err := decodeOldEntry(b); !errors.Is(err, errRecord) {
			t.Errorf("%s: decode = %+v, %v; want errRecord", name, o, err)
		}
	}
}

// A stored request (bodies layout 1) gives its body as the payload, and
// only under its own key.
func TestDecodeOldRequest(t *testing.T) {
	p := []byte("<?xml version=\"1.0\"?>\x00\xff…")
	old := legacyRequest(legacyHeaders, p)
	got, err := decodeOldRequest(payloadKey(sha256.Sum256(old)), old)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("decodeOldRequest = %q, %v; want its body", got, err)
	}
	// A payload and an old request of the same bytes have different keys.
	if payloadKeyOf(old) == payloadKey(sha256.Sum256(old)) {
		t.Error("layout 2 keys are plain hashes")
	}
	for name, bad := range map[string][]byte{
		"truncated":      old[:len(old)-1],
		"trailing":       append(bytes.Clone(old), 0),
		"hostile counts": {0xff, 0x0f},
	} {
		if _, err := decodeOldRequest(payloadKey(sha256.Sum256(bad)), bad); !errors.Is(err, errRecord) {
			t.Errorf("%s: err = %v, want errRecord", name, err)
		}
	}
	if _, err := decodeOldRequest(payloadKeyOf(old), old); !errors.Is(err, errRecord) {
		t.Errorf("wrong key: err = %v, want errRecord", err)
	}
}

// A dead letter written when notifications kept their request reads with
// its body as the payload; one written with a payload reads as it is.
func TestDecodeOldDeadLetters(t *testing.T) {
	old := `{"notification":{"id":7,"channel":"c1","feed":"news","kind":"toast",` +
		`"request":{"headers":[{"name":"Content-Type","value":"text/xml"},{"name":"X-NotificationClass","value":"2"}],` +
		`"body":"PGE+"},"attempts":3,"next_attempt":"2026-03-01T12:00:00Z","created":"2026-03-01T11:00:00Z"},` +
		`"outcome":{"time":"2026-03-01T12:00:00Z","channel":"c1","feed":"news","kind":"toast","status":503,"outcome":"failed","attempt":3,"duration":0}}`
	d, err := decodeOldDeadLetter([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	n := d.Notification
	if string(n.Payload) != "<a>" || n.ID != 7 || n.Kind != tilecast.KindToast || n.Attempts != 3 ||
		!n.Created.Equal(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)) || d.Outcome.Status != 503 {
		t.Errorf("request dead letter reads as %+v", d)
	}
	withPayload, err := json.Marshal(DeadLetter{Notification: tilecast.Notification{ID: 8, Payload: []byte("<b>")},
		Outcome: tilecast.Outcome{Status: 400}})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := decodeOldDeadLetter(withPayload); err != nil || string(d.Notification.Payload) != "<b>" || d.Outcome.Status != 400 {
		t.Errorf("payload dead letter reads as %+v, %v", d, err)
	}
	if _, err := decodeOldDeadLetter([]byte(`{"notification":`)); err == nil {
		t.Error("truncated JSON dead letter read")
	}
}

// FuzzDecodeOldForms: no decoder of an old form panics on any input, and
// whatever one of them reads can be written in the current form and read
// back the same.
func FuzzDecodeOldForms(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		ch := randCodecChannel(r)
		if len(ch.Feeds) > 3 {
			ch.Feeds = ch.Feeds[:3]
		}
		f.Add(oldChannelRecord(&ch))
		st := randFeedState(r)
		f.Add(oldFeedStateRecord(&st))
		o := randCodecOutcome(r)
		f.Add(oldOutcomeRecord(&o))
	}
	for i, n := range sampleNotifications() {
		f.Add(legacyV1Record(n, legacyHeaders))
		f.Add(legacyV2Record(n, payloadKey{0: byte(i), 31: 0xff}))
		f.Add(legacyV3Record(n, nil))
	}
	f.Add(v1Record)
	f.Add([]byte(`{"id":"c1","uri":"http://127.0.0.1/a","feeds":["news"],"created":"2026-03-01T12:00:00+02:00","sends_today":4}`))
	f.Add([]byte(`{"notification":{"id":7,"request":{"body":"PGE+"}},"outcome":{"status":1}}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if ch, err := decodeOldChannel(data); err == nil {
			if got, err := decodeChannel(encodeChannel(&ch)); err != nil || !codecSame(got, ch) {
				t.Fatalf("channel %+v rewritten: %+v, %v", ch, got, err)
			}
		}
		if st, err := decodeOldFeedState(data); err == nil {
			if got, err := decodeFeedState(encodeFeedState(&st)); err != nil || !reflect.DeepEqual(got, normFeedState(st)) {
				t.Fatalf("feed state %+v rewritten: %+v, %v", st, got, err)
			}
		}
		if o, err := decodeOldOutcome(data); err == nil {
			if got, err := decodeOutcome(encodeOutcome(&o)); err != nil || !outcomeSame(got, o) {
				t.Fatalf("outcome %+v rewritten: %+v, %v", o, got, err)
			}
		}
		if o, err := decodeOldEntry(data); err == nil {
			if got, err := decodeEntry(encodeEntry(nil, &o.e)); err != nil || !reflect.DeepEqual(got, o.e) {
				t.Fatalf("entry %+v rewritten: %+v, %v", o.e, got, err)
			}
		} else if !errors.Is(err, errRecord) {
			t.Fatalf("entry error %v is not errRecord", err)
		}
		if d, err := decodeOldDeadLetter(data); err == nil {
			if got, err := decodeDeadLetter(encodeDeadLetter(&d)); err != nil || !sameDeadLetter(got, d) {
				t.Fatalf("dead letter %+v rewritten: %+v, %v", d, got, err)
			}
		}
		_, _ = decodeOldRequest(sha256.Sum256(data), data)
	})
}
