package webpush

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
)

// The plaintext of a push is JSON for the service worker tilecast ships
// (web/webpush/sw.js):
//
//	{"kind":"toast","title":…,"body":…,"url":…,"icon":…,"tag":…}
//	{"kind":"tile","count":…,"title":…,"body":…,"image":…,"url":…}
//
// Empty fields are left out; count is left out when the tile does not set
// it, and 0 (which clears the app badge) is sent. A badge notification
// (tilecast.KindBadge) is a tile with only a count (BadgePayload).

// Payload kinds, the "kind" member.
const (
	PayloadToast = "toast"
	PayloadTile  = "tile"
)

// Toast is a notification the worker shows with showNotification: title
// and body, url opened on click, icon, and tag (a newer notification with
// the same tag replaces the shown one).
type Toast struct {
	Title string
	Body  string
	URL   string
	Icon  string
	Tag   string
}

// Tile is the app's "tile": the badge count (navigator.setAppBadge) and
// the latest content, which the worker stores for the app's page.
type Tile struct {
	Count *int // nil: the badge is left as it is
	Title string
	Body  string
	Image string
	URL   string
}

// Toast tags: see ToastTag.
const (
	tagPrefix = "tilecast:"
	// tagFeedMax bounds the feed part of a tag: a configured feed's name
	// (at most 64 characters) is used as it is, a longer one is hashed.
	tagFeedMax = 64
	// tagHashLen is the hex digits of SHA-256 in a tag: 64 bits, so two
	// items of one feed share a tag only by accident (about 1 in 36
	// million among a million items).
	tagHashLen = 16
	// MaxTag bounds the length of a tag ToastTag returns.
	MaxTag = len(tagPrefix) + tagFeedMax + 1 + tagHashLen
)

// ToastTag returns the tag of a toast about item itemID of feed, so that
// the same item's toast shown twice (sent again after a crash, or the
// item sent again) replaces the first on the device instead of doubling:
// "tilecast:" + feed + ":" + the first 16 hex digits of the SHA-256 of
// itemID. The hash keeps the tag short and stable (the same on every run
// and instance) whatever the ID is; item IDs are often long URLs. The
// feed's summary toast ("N more in …", itemID "") is "tilecast:" + feed,
// so a newer summary replaces the older one and never an item's toast. A
// feed "" (a toast built by hand, `tilecast send`) has no tag: it
// replaces nothing. The result is at most MaxTag bytes.
func ToastTag(feed, itemID string) string {
	if feed == "" {
		return ""
	}
	if len(feed) > tagFeedMax {
		feed = hashHex(feed)
	}
	if itemID == "" {
		return tagPrefix + feed
	}
	return tagPrefix + feed + ":" + hashHex(itemID)
}

// hashHex is the first tagHashLen hex digits of the SHA-256 of s.
func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:tagHashLen/2])
}

type toastJSON struct {
	Kind  string `json:"kind"`
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
	URL   string `json:"url,omitempty"`
	Icon  string `json:"icon,omitempty"`
	Tag   string `json:"tag,omitempty"`
}

type tileJSON struct {
	Kind  string `json:"kind"`
	Count *int   `json:"count,omitempty"`
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
	Image string `json:"image,omitempty"`
	URL   string `json:"url,omitempty"`
}

// maxFitRounds bounds the cut-and-re-encode loop; the costs used to cut
// are upper bounds, so one round always suffices.
const maxFitRounds = 4

// ToastPayload returns t as the worker's JSON, within MaxPlaintext bytes.
// Every field loses what notify.Sanitize removes (control characters
// other than tab and line breaks, invalid UTF-8); while the JSON is too
// long, the longer of title and body is cut on a character boundary with
// "…". URLs, icon and tag are never cut: if they alone do not fit, the
// error wraps tilecast.ErrPayloadTooLarge. A toast with neither title nor
// body is notify.ErrEmpty.
func ToastPayload(t Toast) ([]byte, error) {
	j := toastJSON{Kind: PayloadToast, Title: notify.Sanitize(t.Title), Body: notify.Sanitize(t.Body),
		URL: notify.Sanitize(t.URL), Icon: notify.Sanitize(t.Icon), Tag: notify.Sanitize(t.Tag)}
	if j.Title == "" && j.Body == "" {
		return nil, fmt.Errorf("webpush: toast: no text: %w", notify.ErrEmpty)
	}
	b, err := fitJSON(&j, []*string{&j.Title, &j.Body})
	if err != nil {
		return nil, fmt.Errorf("webpush: toast: %w", err)
	}
	return b, nil
}

// TilePayload returns t as the worker's JSON, within MaxPlaintext bytes,
// cut like ToastPayload (title and body; never URLs or the count). A
// count is clamped to 0–99, as the other transports' tiles are. A tile
// with nothing set is notify.ErrEmpty.
func TilePayload(t Tile) ([]byte, error) {
	j := tileJSON{Kind: PayloadTile, Title: notify.Sanitize(t.Title), Body: notify.Sanitize(t.Body),
		Image: notify.Sanitize(t.Image), URL: notify.Sanitize(t.URL)}
	if t.Count != nil {
		n := min(max(*t.Count, 0), 99)
		j.Count = &n
	}
	if j.Count == nil && j.Title == "" && j.Body == "" && j.Image == "" && j.URL == "" {
		return nil, fmt.Errorf("webpush: tile: no fields: %w", notify.ErrEmpty)
	}
	b, err := fitJSON(&j, []*string{&j.Title, &j.Body})
	if err != nil {
		return nil, fmt.Errorf("webpush: tile: %w", err)
	}
	return b, nil
}

// BadgePayload is the plaintext of a badge notification (the WNS
// transport's kind "badge"): a tile that sets only the app badge, count
// clamped to 0–99 (0 clears it).
func BadgePayload(count int) []byte {
	n := min(max(count, 0), 99)
	return []byte(`{"kind":"tile","count":` + strconv.Itoa(n) + `}`)
}

// encodeJSON writes v without HTML escaping (<, > and & stay one byte:
// the worker is not an HTML page) and without the trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// fitJSON encodes v; while it is longer than MaxPlaintext it cuts the
// texts (pointers into v) and encodes again.
func fitJSON(v any, texts []*string) ([]byte, error) {
	for round := 0; ; round++ {
		b, err := encodeJSON(v)
		if err != nil {
			return nil, err
		}
		if len(b) <= MaxPlaintext {
			return b, nil
		}
		if round == maxFitRounds || !shrink(texts, len(b)-MaxPlaintext) {
			return nil, fmt.Errorf("%d bytes of JSON, limit %d: %w", len(b), MaxPlaintext, tilecast.ErrPayloadTooLarge)
		}
	}
}

// jsonCost is an upper bound of the bytes rune r (of n bytes in the
// input) takes inside a JSON string as encodeJSON writes it.
func jsonCost(r rune, n int) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20, r == '\u2028', r == '\u2029':
		return 6 // \u00XX, \u2028
	case r == utf8.RuneError && n == 1:
		return 6 // invalid byte: \ufffd
	}
	return n
}

func costOf(s string) int {
	c := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		c += jsonCost(r, n)
		i += n
	}
	return c
}

// shrink cuts the longest texts so their encoded size drops by at least
// excess bytes: it finds the highest cap C such that cutting every text
// costing more than C down to C ("…" included) saves enough, so long
// texts lose the most and short ones are untouched. It reports false when
// cutting every text to a bare "…" would not be enough.
func shrink(texts []*string, excess int) bool {
	costs := make([]int, len(texts))
	top := 0
	for i, s := range texts {
		costs[i] = costOf(*s)
		top = max(top, costs[i])
	}
	saved := func(c int) int {
		n := 0
		for _, l := range costs {
			if l > c {
				n += l - c
			}
		}
		return n
	}
	minCap := len(notify.Ellipsis)
	if saved(minCap) < excess {
		return false
	}
	lo, hi := minCap, top
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if saved(mid) >= excess {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	for i, s := range texts {
		if costs[i] > lo {
			*s = cut(*s, lo)
		}
	}
	return true
}

// cut shortens s on a character boundary so that with the ellipsis its
// encoded cost is at most limit, dropping trailing white space before the
// ellipsis.
func cut(s string, limit int) string {
	budget := limit - len(notify.Ellipsis)
	end, used := 0, 0
	for end < len(s) {
		r, n := utf8.DecodeRuneInString(s[end:])
		w := jsonCost(r, n)
		if used+w > budget {
			break
		}
		used += w
		end += n
	}
	return strings.TrimRightFunc(s[:end], unicode.IsSpace) + notify.Ellipsis
}

// Encoder maps notify's payload model to the worker's JSON. It implements
// notify.Encoder, so notify.NewRenderer(&webpush.Encoder{…}) renders a
// feed's [feed.toast] and [feed.tile] templates into Web Push plaintexts
// (Notification.Payload), and is safe for concurrent use.
//
// Toast: text1 → title, text2 → body, param → url (never altered: the
// worker resolves it against its scope and opens only http(s)), Icon →
// icon, the toast's feed and item → tag (ToastTag).
//
// Tile (one tile per app, whatever the MPNS template):
//
//	count  ← count (cleared: 0)
//	title  ← title
//	body   ← back_content, else wide_back_content, else wide_content1, else back_title
//	image  ← background_image, else icon_image, else cycle_images[0], else small_background_image
//	url    ← id (the secondary tile's page)
type Encoder struct {
	// Icon is every toast's icon (the app's icon URL); "" leaves it out.
	Icon string
}

var (
	_ notify.Encoder      = (*Encoder)(nil)
	_ notify.BadgeEncoder = (*Encoder)(nil)
)

// EncodeToast implements notify.Encoder.
func (e *Encoder) EncodeToast(t notify.Toast) ([]byte, error) {
	return ToastPayload(Toast{Title: t.Text1, Body: t.Text2, URL: t.Param, Icon: e.Icon, Tag: ToastTag(t.Feed, t.ItemID)})
}

// EncodeTile implements notify.Encoder.
func (e *Encoder) EncodeTile(t notify.Tile) ([]byte, error) {
	return TilePayload(TileFrom(t))
}

// EncodeRaw implements notify.Encoder: the bytes as they are, for a
// worker of the app's own (the bundled worker shows only toasts and
// tiles).
func (e *Encoder) EncodeRaw(r notify.Raw) ([]byte, error) {
	if len(r.Payload) > MaxPlaintext {
		return nil, fmt.Errorf("webpush: raw payload of %d bytes, limit %d: %w", len(r.Payload), MaxPlaintext, tilecast.ErrPayloadTooLarge)
	}
	return bytes.Clone(r.Payload), nil
}

// EncodeBadge implements notify.BadgeEncoder: a badge notification is a
// tile with only the count (BadgePayload).
func (e *Encoder) EncodeBadge(b notify.Badge) ([]byte, error) { return BadgePayload(b.Count), nil }

// MaxTyped implements notify.Encoder.
func (e *Encoder) MaxTyped() int { return MaxPlaintext }

// MaxRaw implements notify.Encoder.
func (e *Encoder) MaxRaw() int { return MaxPlaintext }

// TileFrom maps a notify.Tile to the worker's tile (see Encoder).
func TileFrom(t notify.Tile) Tile {
	first := func(fs ...notify.Field) string {
		for _, f := range fs {
			if f.State == notify.Present && f.Value != "" {
				return f.Value
			}
		}
		return ""
	}
	out := Tile{
		Title: first(t.Title),
		Body:  first(t.BackContent, t.WideBackContent, t.WideContent1, t.BackTitle),
		Image: first(t.BackgroundImage, t.IconImage, t.CycleImages[0], t.SmallBackgroundImage),
		URL:   t.ID,
	}
	switch t.Count.State {
	case notify.Cleared:
		n := 0
		out.Count = &n
	case notify.Present:
		if n, err := strconv.Atoi(strings.TrimSpace(t.Count.Value)); err == nil {
			out.Count = &n
		}
	}
	return out
}
