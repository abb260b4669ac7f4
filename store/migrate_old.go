package store

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/tilecast/tilecast"
)

// Old record forms, read only by the schema 4 migration (migrate.go), which
// rewrites every record still in one of them into the tagged form
// (tlv.go). The live decoders read one form per record type; these are the
// forms files written before schema 4 hold:
//
//	channel       JSON ('{'), or version 1: byte 1; str ID, URI, User;
//	              uvarint feed count + str per feed; str Device; time
//	              Created; str LastOutcome; time LastOutcomeAt; varint
//	              FailureStreak; time NextAllowedAt; str SendsDay; varint
//	              SendsToday
//	feed state    JSON, or version 1: byte 1; str ETag, LastModified; byte
//	              flags (1 Baselined, 2 Broken, 4 Latest present); time
//	              LastFetch; str LastResult; time LastSuccess; varint
//	              Failures; time FailingSince, NextFetch; str Title, Link;
//	              time SeenRefreshed; if Latest: str Feed.Name, Feed.Title,
//	              Feed.Link, item Item, uvarint count + item per Items,
//	              varint NewCount, str User (item = str ID, Title, Link,
//	              Summary; time Published; str Image)
//	ledger entry  JSON, or version 1: byte 1; time Time; str ChannelID,
//	              User, Feed, ItemID, Kind; varint Status; str
//	              Notification, Subscription, Device, Action; varint
//	              Attempt, RetryIn, Duration; str Error
//	outbox entry  byte version; uvarint ID; str ChannelID, Feed, User,
//	              ItemID, Kind; then version 1: a request inline (uvarint
//	              header count, str name and value per header, str body);
//	              version 2: the 32-byte key of a stored request (bodies
//	              layout 1); version 3: byte 0 + str payload, or byte 1 +
//	              the 32-byte key of a stored payload (bodies layout 2);
//	              then varint Attempts, time NextAttempt, time Created
//	dead letter   JSON {"notification": …, "outcome": …}; one written when
//	              entries kept their request has "request": {"body": …}
//	              in its notification instead of "payload"
//	bodies value  layout 1: byte 1, uvarint references, a request (as in
//	              an outbox entry version 1) keyed by sha256 of it; its
//	              body is the payload
//
// where str = uvarint length + bytes and time = byte 0 for the zero time,
// else byte 1 + varint Unix seconds + uvarint nanoseconds. A request's
// headers were the MPNS headers of the entry's kind, which the transport
// now builds when it sends: they are read and dropped.

// Version bytes of the old binary forms.
const (
	oldChannelV1   = 1
	oldFeedStateV1 = 1
	oldOutcomeV1   = 1
	oldRecordV1    = 1 // request inline
	oldRecordV2    = 2 // request stored in bodies (layout 1)
	oldRecordV3    = 3 // payload inline or stored in bodies (layout 2)
	oldPayloadV1   = 1 // bodies layout: a stored request
)

// Payload forms of an outbox entry version 3.
const (
	oldPayloadInline = 0
	oldPayloadShared = 1
)

// oldFeedState flags.
const (
	oldFeedBaselined = 1 << iota
	oldFeedBroken
	oldFeedHasLatest
	oldFeedFlags = oldFeedBaselined | oldFeedBroken | oldFeedHasLatest
)

// decodeOld decodes a record in one of its old forms: binary version
// `version` (read by bin) or JSON (first byte '{'). what names the record
// in errors.
func decodeOld[T any](what string, v []byte, version byte, bin func(recordReader) (T, error)) (T, error) {
	var zero T
	if len(v) == 0 {
		return zero, fmt.Errorf("decode %s: %w: empty", what, errRecord)
	}
	switch v[0] {
	case version:
		return bin(newReader(string(v), 1))
	case '{':
		x := new(T)
		if err := json.Unmarshal(v, x); err != nil {
			return zero, fmt.Errorf("decode %s: %w", what, err)
		}
		return *x, nil
	default:
		return zero, fmt.Errorf("decode %s: %w: unknown version %d", what, errRecord, v[0])
	}
}

// oldTime reads the old time encoding (tag byte 0 or 1 + seconds + nanoseconds).
func (r *recordReader) oldTime() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := r.varint()
		nsec := r.uvarint()
		if r.err != nil {
			return time.Time{}
		}
		if nsec >= uint64(time.Second) {
			r.fail("nanoseconds out of range")
			return time.Time{}
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		if t.IsZero() {
			r.fail("zero time with tag 1")
			return time.Time{}
		}
		return t
	default:
		r.fail("bad time tag")
		return time.Time{}
	}
}

// done fails on trailing bytes and wraps the reader's error.
func (r *recordReader) finish(what string) error {
	if r.err == nil && r.off != r.end {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return fmt.Errorf("decode %s: %w", what, r.err)
	}
	return nil
}

// decodeOldChannel reads a channel record written before schema 4: an
// MPNS channel, as every channel was then.
func decodeOldChannel(v []byte) (tilecast.Channel, error) {
	ch, err := decodeOld("channel", v, oldChannelV1, func(r recordReader) (tilecast.Channel, error) {
		var ch tilecast.Channel
		ch.ID = r.str()
		ch.URI = r.str()
		ch.User = r.str()
		nf := r.uvarint()
		if r.err == nil && nf > uint64(r.end-r.off) {
			r.fail("feed count past end")
		}
		if r.err == nil && nf > 0 {
			ch.Feeds = make([]string, nf)
			for i := range ch.Feeds {
				ch.Feeds[i] = r.str()
			}
		}
		ch.Device = r.str()
		ch.Created = r.oldTime()
		ch.LastOutcome = r.str()
		ch.LastOutcomeAt = r.oldTime()
		ch.FailureStreak = r.int()
		ch.NextAllowedAt = r.oldTime()
		ch.SendsDay = r.str()
		ch.SendsToday = r.int()
		if err := r.finish("channel"); err != nil {
			return tilecast.Channel{}, err
		}
		return ch, nil
	})
	if err != nil {
		return tilecast.Channel{}, err
	}
	ch.Transport, ch.Keys, ch.Expires = tilecast.TransportMPNS, nil, time.Time{}
	return ch, nil
}

func (r *recordReader) oldItem() tilecast.Item {
	var it tilecast.Item
	it.ID = r.str()
	it.Title = r.str()
	it.Link = r.str()
	it.Summary = r.str()
	it.Published = r.oldTime()
	it.Image = r.str()
	return it
}

// decodeOldFeedState reads a feed state record written before schema 4.
func decodeOldFeedState(v []byte) (tilecast.FeedState, error) {
	return decodeOld("feed state", v, oldFeedStateV1, func(r recordReader) (tilecast.FeedState, error) {
		var st tilecast.FeedState
		st.ETag = r.str()
		st.LastModified = r.str()
		flags := r.byte()
		if flags&^oldFeedFlags != 0 {
			r.fail("unknown flags")
		}
		st.Baselined = flags&oldFeedBaselined != 0
		st.Broken = flags&oldFeedBroken != 0
		st.LastFetch = r.oldTime()
		st.LastResult = r.str()
		st.LastSuccess = r.oldTime()
		st.Failures = r.int()
		st.FailingSince = r.oldTime()
		st.NextFetch = r.oldTime()
		st.Title = r.str()
		st.Link = r.str()
		st.SeenRefreshed = r.oldTime()
		if flags&oldFeedHasLatest != 0 && r.err == nil {
			l := &tilecast.TemplateData{}
			l.Feed.Name = r.str()
			l.Feed.Title = r.str()
			l.Feed.Link = r.str()
			l.Item = r.oldItem()
			n := r.uvarint()
			// An item takes at least 6 bytes.
			if r.err == nil && n > uint64(r.end-r.off)/6 {
				r.fail("item count past end")
			}
			if r.err == nil && n > 0 {
				l.Items = make([]tilecast.Item, n)
				for i := range l.Items {
					l.Items[i] = r.oldItem()
				}
			}
			l.NewCount = r.int()
			l.User = r.str()
			st.Latest = l
		}
		if err := r.finish("feed state"); err != nil {
			return tilecast.FeedState{}, err
		}
		return st, nil
	})
}

// decodeOldOutcome reads a ledger value written before schema 4.
func decodeOldOutcome(v []byte) (tilecast.Outcome, error) {
	return decodeOld("outcome", v, oldOutcomeV1, func(r recordReader) (tilecast.Outcome, error) {
		var o tilecast.Outcome
		o.Time = r.oldTime()
		o.ChannelID = r.str()
		o.User = r.str()
		o.Feed = r.str()
		o.ItemID = r.str()
		o.Kind = tilecast.Kind(r.str())
		o.Status = r.int()
		o.Notification = r.str()
		o.Subscription = r.str()
		o.Device = r.str()
		o.Action = tilecast.Action(r.str())
		o.Attempt = r.int()
		o.RetryIn = time.Duration(r.varint())
		o.Duration = time.Duration(r.varint())
		o.Error = r.str()
		if err := r.finish("outcome"); err != nil {
			return tilecast.Outcome{}, err
		}
		return o, nil
	})
}

// oldEntry is an outbox entry as written before schema 4: e as it will be
// rewritten, and for a version 2 entry (requestRef) e.ref names a stored
// request (bodies layout 1), not a payload.
type oldEntry struct {
	e          entry
	requestRef bool
}

// decodeOldEntry reads an outbox record of version 1, 2 or 3.
func decodeOldEntry(b []byte) (oldEntry, error) {
	var o oldEntry
	if len(b) == 0 {
		return o, fmt.Errorf("decode outbox entry: %w: empty", errRecord)
	}
	version := b[0]
	if version != oldRecordV1 && version != oldRecordV2 && version != oldRecordV3 {
		return o, fmt.Errorf("decode outbox entry: %w: unknown version %d", errRecord, version)
	}
	r := newReader(string(b), 1)
	e := &o.e
	n := &e.n
	n.ID = r.uvarint()
	n.ChannelID = r.str()
	n.Feed = r.str()
	n.User = r.str()
	n.ItemID = r.str()
	n.Kind = tilecast.Kind(r.str())
	form := byte(oldPayloadShared) // version 2
	switch version {
	case oldRecordV1:
		form = oldPayloadInline
		r.requestHeaders()
	case oldRecordV2:
		o.requestRef = true
	case oldRecordV3:
		form = r.byte()
	}
	switch form {
	case oldPayloadInline:
		if p := r.str(); len(p) > 0 && r.err == nil {
			n.Payload = []byte(p)
		}
	case oldPayloadShared:
		if k := r.raw(len(e.ref)); r.err == nil {
			copy(e.ref[:], k)
			e.hasRef = true
		}
	default:
		r.fail("bad payload form")
	}
	att := r.varint()
	if att < math.MinInt || att > math.MaxInt {
		r.fail("attempts out of range")
	}
	n.Attempts = int(att)
	n.NextAttempt = r.oldTime()
	n.Created = r.oldTime()
	if err := r.finish("outbox entry"); err != nil {
		return oldEntry{}, err
	}
	return o, nil
}

// requestHeaders reads and drops the headers of a stored request: uvarint
// count, then str name and str value each.
func (r *recordReader) requestHeaders() {
	hc := r.uvarint()
	// Each header takes at least two bytes: a count beyond that is garbage,
	// and checking it first keeps a hostile count from looping long.
	if r.err == nil && hc > uint64(r.end-r.off)/2 {
		r.fail("header count past end")
	}
	for i := uint64(0); i < hc && r.err == nil; i++ {
		r.str()
		r.str()
	}
}

// decodeOldRequest returns the payload of a stored request (bodies layout
// 1, the content after layout and count), checking it against its key.
func decodeOldRequest(k payloadKey, content []byte) ([]byte, error) {
	if sha256.Sum256(content) != k {
		return nil, fmt.Errorf("%w: stored request does not match its key", errRecord)
	}
	r := newReader(string(content), 0)
	r.requestHeaders()
	body := r.str()
	if err := r.finish("stored request"); err != nil {
		return nil, err
	}
	if body == "" {
		return nil, nil
	}
	return []byte(body), nil
}

// oldDeadLetter reads a dead letter as stored before schema 4 (see the
// table above).
type oldDeadLetter struct {
	Notification struct {
		tilecast.Notification
		Request *struct {
			Body []byte `json:"body"`
		} `json:"request,omitempty"`
	} `json:"notification"`
	Outcome tilecast.Outcome `json:"outcome"`
}

// decodeOldDeadLetter reads a JSON dead letter of either form.
func decodeOldDeadLetter(v []byte) (DeadLetter, error) {
	var s oldDeadLetter
	if err := json.Unmarshal(v, &s); err != nil {
		return DeadLetter{}, fmt.Errorf("decode dead letter: %w", err)
	}
	d := DeadLetter{Notification: s.Notification.Notification, Outcome: s.Outcome}
	if req := s.Notification.Request; req != nil && d.Notification.Payload == nil {
		d.Notification.Payload = req.Body
	}
	return d, nil
}
