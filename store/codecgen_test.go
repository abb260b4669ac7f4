package store

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// codecGen draws record field values from edge cases and random values,
// for the codecs' round-trip tests and fuzz seeds.
type codecGen struct{ r *rand.Rand }

// str returns "", unicode, invalid UTF-8, a string whose length needs a
// 2-byte varint, or random bytes.
func (g codecGen) str() string {
	r := g.r
	switch r.IntN(6) {
	case 0:
		return ""
	case 1:
		return "ünïcødé ✓ 日本語 🚀"
	case 2:
		return "\xff\xfe\x00bad utf-8"
	case 3:
		return strings.Repeat("x", 128+r.IntN(3000))
	default:
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
}

// time returns the zero time, a Local time with a monotonic reading, a
// zoned one, one just after the zero time, the far past or future, or UTC.
func (g codecGen) time() time.Time {
	r := g.r
	switch r.IntN(8) {
	case 0, 1:
		return time.Time{}
	case 2:
		return time.Now()
	case 3:
		return time.Unix(r.Int64N(4e9)-2e9, r.Int64N(1e9)).In(time.FixedZone("X", 5*3600+1800))
	case 4:
		return time.Time{}.Add(time.Duration(r.IntN(10)) + 1)
	case 5:
		return time.Unix(r.Int64()-math.MaxInt64/2, r.Int64N(1e9)).UTC()
	default:
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC()
	}
}

// int returns 0, the extremes or a small number of either sign.
func (g codecGen) int() int {
	switch g.r.IntN(5) {
	case 0:
		return 0
	case 1:
		return math.MaxInt
	case 2:
		return math.MinInt
	default:
		return g.r.IntN(2000) - 1000
	}
}
