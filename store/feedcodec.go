package store

import (
	"encoding/binary"
	"fmt"

	"github.com/tilecast/tilecast"
)

// feedStateV2 is the version byte of a feed state record in tagged form
// (tlv.go). Version 1 and JSON records are older forms (migrate_old.go).
const feedStateV2 = 2

// Feed state record, version 2: tagged fields (tlv.go)
//
//	1 str  ETag           6 str  LastResult     11 str    Title
//	2 str  LastModified   7 time LastSuccess    12 str    Link
//	3 bool Baselined      8 int  Failures       13 time   SeenRefreshed
//	4 bool Broken         9 time FailingSince   14 nested Latest
//	5 time LastFetch      10 time NextFetch
//
// Latest (present, possibly empty, when st.Latest is not nil):
//
//	1 str Feed.Name   3 str Feed.Link   5 list Items (nested item each)
//	2 str Feed.Title  4 nested Item     6 int  NewCount
//	                                    7 str  User
//
// item: 1 str ID, 2 str Title, 3 str Link, 4 str Summary, 5 time
// Published, 6 str Image.
//
// Binary instead of JSON because every poll reads its feed's state first,
// a 304 included: JSON decoding was ~7 % of a 5,000-feed tick's CPU. A
// round trip keeps what the channel codec keeps (strings byte for byte,
// instants in UTC; an empty Items comes back nil, as through JSON).
const (
	feedTagETag = 1 + iota
	feedTagLastModified
	feedTagBaselined
	feedTagBroken
	feedTagLastFetch
	feedTagLastResult
	feedTagLastSuccess
	feedTagFailures
	feedTagFailingSince
	feedTagNextFetch
	feedTagTitle
	feedTagLink
	feedTagSeenRefreshed
	feedTagLatest
	feedTagMax = feedTagLatest
)

// Tags of Latest.
const (
	latestTagFeedName = 1 + iota
	latestTagFeedTitle
	latestTagFeedLink
	latestTagItem
	latestTagItems
	latestTagNewCount
	latestTagUser
)

// Tags of an item.
const (
	itemTagID = 1 + iota
	itemTagTitle
	itemTagLink
	itemTagSummary
	itemTagPublished
	itemTagImage
)

func feedStateKnown(tag uint64) bool { return tag >= 1 && tag <= feedTagMax }

func appendItemFields(dst []byte, it *tilecast.Item) []byte {
	dst = appendStrField(dst, itemTagID, it.ID)
	dst = appendStrField(dst, itemTagTitle, it.Title)
	dst = appendStrField(dst, itemTagLink, it.Link)
	dst = appendStrField(dst, itemTagSummary, it.Summary)
	dst = appendTimeField(dst, itemTagPublished, it.Published)
	return appendStrField(dst, itemTagImage, it.Image)
}

// appendFeedState appends st's record to dst.
func appendFeedState(dst []byte, st *tilecast.FeedState) []byte {
	dst = append(dst, feedStateV2)
	dst = appendStrField(dst, feedTagETag, st.ETag)
	dst = appendStrField(dst, feedTagLastModified, st.LastModified)
	dst = appendBoolField(dst, feedTagBaselined, st.Baselined)
	dst = appendBoolField(dst, feedTagBroken, st.Broken)
	dst = appendTimeField(dst, feedTagLastFetch, st.LastFetch)
	dst = appendStrField(dst, feedTagLastResult, st.LastResult)
	dst = appendTimeField(dst, feedTagLastSuccess, st.LastSuccess)
	dst = appendIntField(dst, feedTagFailures, int64(st.Failures))
	dst = appendTimeField(dst, feedTagFailingSince, st.FailingSince)
	dst = appendTimeField(dst, feedTagNextFetch, st.NextFetch)
	dst = appendStrField(dst, feedTagTitle, st.Title)
	dst = appendStrField(dst, feedTagLink, st.Link)
	dst = appendTimeField(dst, feedTagSeenRefreshed, st.SeenRefreshed)
	if l := st.Latest; l != nil {
		var scratch, item []byte
		dst = appendNested(dst, feedTagLatest, &scratch, func(b []byte) []byte {
			b = appendStrField(b, latestTagFeedName, l.Feed.Name)
			b = appendStrField(b, latestTagFeedTitle, l.Feed.Title)
			b = appendStrField(b, latestTagFeedLink, l.Feed.Link)
			if it := appendItemFields(item[:0], &l.Item); len(it) > 0 {
				b = appendBytesField(b, latestTagItem, it)
				item = it
			}
			if len(l.Items) > 0 {
				var list []byte
				for i := range l.Items {
					item = appendItemFields(item[:0], &l.Items[i])
					list = binary.AppendUvarint(list, uint64(len(item)))
					list = append(list, item...)
				}
				b = appendBytesField(b, latestTagItems, list)
			}
			b = appendIntField(b, latestTagNewCount, int64(l.NewCount))
			b = appendStrField(b, latestTagUser, l.User)
			if b == nil {
				b = []byte{} // present, empty
			}
			return b
		})
	}
	return dst
}

// encodeFeedState returns st's record in a slice of its own.
func encodeFeedState(st *tilecast.FeedState) []byte {
	return appendFeedState(nil, st)
}

// decodeFeedState parses a feed state record. The result shares nothing
// with v.
func decodeFeedState(v []byte) (tilecast.FeedState, error) {
	var st tilecast.FeedState
	if err := checkVersion(v, feedStateV2); err != nil {
		return st, fmt.Errorf("decode feed state: %w", err)
	}
	r := newReader(string(v), 1)
	for r.more() {
		switch r.next() {
		case feedTagETag:
			st.ETag = r.rest()
		case feedTagLastModified:
			st.LastModified = r.rest()
		case feedTagBaselined:
			st.Baselined = r.boolVal()
		case feedTagBroken:
			st.Broken = r.boolVal()
		case feedTagLastFetch:
			st.LastFetch = r.timeVal()
		case feedTagLastResult:
			st.LastResult = r.rest()
		case feedTagLastSuccess:
			st.LastSuccess = r.timeVal()
		case feedTagFailures:
			st.Failures = r.int()
		case feedTagFailingSince:
			st.FailingSince = r.timeVal()
		case feedTagNextFetch:
			st.NextFetch = r.timeVal()
		case feedTagTitle:
			st.Title = r.rest()
		case feedTagLink:
			st.Link = r.rest()
		case feedTagSeenRefreshed:
			st.SeenRefreshed = r.timeVal()
		case feedTagLatest:
			n := r.nested()
			st.Latest = n.latest()
			r.closeNested(&n)
		default:
			r.skip()
		}
		r.done()
	}
	if r.err != nil {
		return tilecast.FeedState{}, fmt.Errorf("decode feed state: %w", r.err)
	}
	return st, nil
}

func (r *recordReader) latest() *tilecast.TemplateData {
	l := &tilecast.TemplateData{}
	for r.more() {
		switch r.next() {
		case latestTagFeedName:
			l.Feed.Name = r.rest()
		case latestTagFeedTitle:
			l.Feed.Title = r.rest()
		case latestTagFeedLink:
			l.Feed.Link = r.rest()
		case latestTagItem:
			n := r.nested()
			l.Item = n.item()
			r.closeNested(&n)
		case latestTagItems:
			l.Items = r.items()
		case latestTagNewCount:
			l.NewCount = r.int()
		case latestTagUser:
			l.User = r.rest()
		default:
			r.skip()
		}
		r.done()
	}
	return l
}

// items reads a list of nested items (nil when empty).
func (r *recordReader) items() []tilecast.Item {
	// Count first (each element takes at least a byte), so a hostile
	// list cannot make it allocate more than the record's size.
	c := *r
	n := 0
	for c.err == nil && c.off < c.end {
		c.str()
		n++
	}
	if c.err != nil {
		r.err = c.err
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]tilecast.Item, n)
	for i := range out {
		l := r.uvarint()
		e := recordReader{s: r.s, off: r.off, end: r.off + int(l)}
		r.off = e.end
		out[i] = e.item()
		r.closeNested(&e)
	}
	return out
}

func (r *recordReader) item() tilecast.Item {
	var it tilecast.Item
	for r.more() {
		switch r.next() {
		case itemTagID:
			it.ID = r.rest()
		case itemTagTitle:
			it.Title = r.rest()
		case itemTagLink:
			it.Link = r.rest()
		case itemTagSummary:
			it.Summary = r.rest()
		case itemTagPublished:
			it.Published = r.timeVal()
		case itemTagImage:
			it.Image = r.rest()
		default:
			r.skip()
		}
		r.done()
	}
	return it
}
