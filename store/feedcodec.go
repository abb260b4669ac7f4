package store

import (
	"encoding/binary"
	"fmt"

	"github.com/tilecast/tilecast"
)

// feedStateV1 is the version byte of the binary feed state record. As for
// channels (chancodec.go), records written before it are JSON and start
// with '{', which no version byte may ever be.
const feedStateV1 = 1

// Feed state record, version 1 (the encodings of codec.go):
//
//	byte    version (1)
//	str     ETag, LastModified
//	byte    flags: 1 Baselined, 2 Broken, 4 Latest present
//	time    LastFetch
//	str     LastResult
//	time    LastSuccess
//	varint  Failures
//	time    FailingSince, NextFetch
//	str     Title, Link
//	time    SeenRefreshed
//	if Latest:
//	  str     Feed.Name, Feed.Title, Feed.Link
//	  item    Item
//	  uvarint item count, then item per Items entry
//	  varint  NewCount
//	  str     User
//
// where item is str ID, Title, Link, Summary; time Published; str Image.
//
// Binary instead of JSON because every poll reads its feed's state first,
// a 304 included: JSON decoding was ~7 % of a 5,000-feed tick's CPU. No
// migration: a JSON record stays readable and becomes binary when the feed
// state is next written. A round trip keeps what the channel codec keeps
// (strings byte for byte, instants in UTC; an empty Items comes back nil,
// as through JSON), and decoding is strict in the same way.
const (
	feedBaselined = 1 << iota
	feedBroken
	feedHasLatest
	feedFlags = feedBaselined | feedBroken | feedHasLatest
)

func appendItem(dst []byte, it *tilecast.Item) []byte {
	dst = appendStr(dst, it.ID)
	dst = appendStr(dst, it.Title)
	dst = appendStr(dst, it.Link)
	dst = appendStr(dst, it.Summary)
	dst = appendTime(dst, it.Published)
	return appendStr(dst, it.Image)
}

// appendFeedState appends st's version 1 record to dst.
func appendFeedState(dst []byte, st *tilecast.FeedState) []byte {
	dst = append(dst, feedStateV1)
	dst = appendStr(dst, st.ETag)
	dst = appendStr(dst, st.LastModified)
	var flags byte
	if st.Baselined {
		flags |= feedBaselined
	}
	if st.Broken {
		flags |= feedBroken
	}
	if st.Latest != nil {
		flags |= feedHasLatest
	}
	dst = append(dst, flags)
	dst = appendTime(dst, st.LastFetch)
	dst = appendStr(dst, st.LastResult)
	dst = appendTime(dst, st.LastSuccess)
	dst = binary.AppendVarint(dst, int64(st.Failures))
	dst = appendTime(dst, st.FailingSince)
	dst = appendTime(dst, st.NextFetch)
	dst = appendStr(dst, st.Title)
	dst = appendStr(dst, st.Link)
	dst = appendTime(dst, st.SeenRefreshed)
	if l := st.Latest; l != nil {
		dst = appendStr(dst, l.Feed.Name)
		dst = appendStr(dst, l.Feed.Title)
		dst = appendStr(dst, l.Feed.Link)
		dst = appendItem(dst, &l.Item)
		dst = binary.AppendUvarint(dst, uint64(len(l.Items)))
		for i := range l.Items {
			dst = appendItem(dst, &l.Items[i])
		}
		dst = binary.AppendVarint(dst, int64(l.NewCount))
		dst = appendStr(dst, l.User)
	}
	return dst
}

// encodeFeedState returns st's record in a slice of its own.
func encodeFeedState(st *tilecast.FeedState) []byte {
	return appendFeedState(nil, st)
}

// decodeFeedState parses a feed state record of any version: binary or
// the JSON written before it. The result shares nothing with v.
func decodeFeedState(v []byte) (tilecast.FeedState, error) {
	return decodeVersioned("feed state", v, feedStateV1, decodeFeedStateV1)
}

func (r *recordReader) item() tilecast.Item {
	var it tilecast.Item
	it.ID = r.str()
	it.Title = r.str()
	it.Link = r.str()
	it.Summary = r.str()
	it.Published = r.time()
	it.Image = r.str()
	return it
}

func decodeFeedStateV1(v []byte) (tilecast.FeedState, error) {
	var st tilecast.FeedState
	r := &recordReader{s: string(v), off: 1}
	st.ETag = r.str()
	st.LastModified = r.str()
	flags := r.byte()
	if flags&^feedFlags != 0 {
		r.fail("unknown flags")
	}
	st.Baselined = flags&feedBaselined != 0
	st.Broken = flags&feedBroken != 0
	st.LastFetch = r.time()
	st.LastResult = r.str()
	st.LastSuccess = r.time()
	st.Failures = r.int()
	st.FailingSince = r.time()
	st.NextFetch = r.time()
	st.Title = r.str()
	st.Link = r.str()
	st.SeenRefreshed = r.time()
	if flags&feedHasLatest != 0 && r.err == nil {
		l := &tilecast.TemplateData{}
		l.Feed.Name = r.str()
		l.Feed.Title = r.str()
		l.Feed.Link = r.str()
		l.Item = r.item()
		n := r.uvarint()
		// An item takes at least 6 bytes: checking the count first keeps a
		// hostile count from allocating.
		if r.err == nil && n > uint64(len(r.s)-r.off)/6 {
			r.fail("item count past end")
		}
		if r.err == nil && n > 0 {
			l.Items = make([]tilecast.Item, n)
			for i := range l.Items {
				l.Items[i] = r.item()
			}
		}
		l.NewCount = r.int()
		l.User = r.str()
		st.Latest = l
	}
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return tilecast.FeedState{}, fmt.Errorf("decode feed state: %w", r.err)
	}
	return st, nil
}
