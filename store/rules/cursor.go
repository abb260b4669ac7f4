package rules

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
)

// A listing cursor (design.md §11) is opaque to clients: base64url of a
// version byte, the kind of listing, the store's key of the last record
// returned, and a CRC-32 of those, so a cut, changed or foreign cursor is
// refused (tilecast.ErrBadCursor) instead of silently starting somewhere
// else. Both stores use the same keys:
//
//	CursorChannels  the channel ID
//	CursorOutcomes  channel ID + 0x00 + 8-byte BE Unix nanoseconds + 8-byte BE sequence
//	CursorDead      8-byte BE notification ID
//
// so a cursor is only as foreign as the listing it came from.

// Cursor kinds: a cursor is valid only for the listing that made it.
const (
	cursorVersion  = 1
	CursorChannels = 'c'
	CursorOutcomes = 'o'
	CursorDead     = 'd'
)

// MaxCursorKey bounds the key inside a cursor: channel IDs are 16 hex
// digits, ledger keys add 17 bytes; this leaves room for longer IDs of
// records made by hand and refuses anything absurd before decoding it.
const MaxCursorKey = 512

// EncodeCursor returns the cursor of a listing of kind positioned after key.
func EncodeCursor(kind byte, key []byte) string {
	b := make([]byte, 0, 2+len(key)+4)
	b = append(b, cursorVersion, kind)
	b = append(b, key...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor returns the key inside cursor, nil for "" (the first page).
// Anything else than a cursor EncodeCursor made for kind is
// tilecast.ErrBadCursor.
func DecodeCursor(cursor string, kind byte) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	bad := func(why string) error { return fmt.Errorf("%w: %s", tilecast.ErrBadCursor, why) }
	if len(cursor) > base64.RawURLEncoding.EncodedLen(2+MaxCursorKey+4) {
		return nil, bad("too long")
	}
	// One spelling per cursor: the decoder would skip line breaks and
	// ignore stray low bits.
	if strings.IndexFunc(cursor, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return nil, bad("not base64url")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil {
		return nil, bad("not base64url")
	}
	if len(b) < 2+1+4 {
		return nil, bad("too short")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, bad("checksum mismatch (changed or cut)")
	}
	if body[0] != cursorVersion {
		return nil, bad(fmt.Sprintf("unknown version %d", body[0]))
	}
	if body[1] != kind {
		return nil, bad("it belongs to another listing")
	}
	return body[2:], nil
}

// ChannelPosition checks the key of a CursorChannels cursor: a channel ID
// is text without NUL.
func ChannelPosition(key []byte) error {
	if bytes.IndexByte(key, 0) >= 0 || !utf8.Valid(key) {
		return fmt.Errorf("%w: not a channel position", tilecast.ErrBadCursor)
	}
	return nil
}

// LedgerPosition splits the key of a CursorOutcomes cursor into the
// channel ID, the Unix nanoseconds and the sequence of the entry it names.
func LedgerPosition(key []byte) (channel string, nanos, seq uint64, err error) {
	i := bytes.IndexByte(key, 0)
	if i <= 0 || len(key) != i+17 || !utf8.Valid(key[:i]) {
		return "", 0, 0, fmt.Errorf("%w: not a ledger position", tilecast.ErrBadCursor)
	}
	return string(key[:i]), binary.BigEndian.Uint64(key[i+1:]), binary.BigEndian.Uint64(key[i+9:]), nil
}
