package notify

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean ascii", "Hello, world", "Hello, world"},
		{"keeps tab newline cr", "a\tb\nc\rd", "a\tb\nc\rd"},
		{"drops C0", "a\x00b\x01c\x1fd\x0be", "abcde"},
		{"keeps DEL and C1", "a\x7fb\u0085c", "a\x7fb\u0085c"},
		{"drops FFFE FFFF", "a\uFFFEb\uFFFFc", "abc"},
		{"keeps literal FFFD", "a\uFFFDb", "a\uFFFDb"},
		{"drops invalid utf8", "a\xffb\xc3c", "abc"},
		{"drops encoded surrogate", "a\xed\xa0\x80b", "ab"},
		{"keeps astral", "emoji 😀", "emoji 😀"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sanitize(tt.in); got != tt.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitizeCleanDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("Ünïcode text ", 20)
	if n := testing.AllocsPerRun(100, func() { _ = Sanitize(s) }); n != 0 {
		t.Errorf("Sanitize of clean text allocated %v times", n)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		n        int
		in, want string
	}{
		{10, "short", "short"},
		{5, "exact", "exact"},
		{5, "too long", "too…"},
		{4, "Ünïcödé", "Ünï…"},
		{6, "word  and more", "word…"}, // trailing space dropped before the ellipsis
		{1, "abc", "…"},
		{0, "abc", ""},
		{-3, "abc", ""},
	}
	for _, tt := range tests {
		got := Truncate(tt.n, tt.in)
		if got != tt.want {
			t.Errorf("Truncate(%d, %q) = %q, want %q", tt.n, tt.in, got, tt.want)
		}
		if tt.n > 0 && utf8.RuneCountInString(got) > tt.n {
			t.Errorf("Truncate(%d, %q) = %q: more than %d runes", tt.n, tt.in, got, tt.n)
		}
	}
}

func TestParseCount(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"3", "3", true},
		{" 7\n", "7", true},
		{"0", "0", true},
		{"00", "0", true},
		{"+5", "5", true},
		{"99", "99", true},
		{"100", "99", true},
		{"123456789012345678901234567890", "99", true},
		{"-4", "0", true},
		{"", "", false},
		{"   ", "", false},
		{"three", "", false},
		{"3.5", "", false},
	}
	for _, tt := range tests {
		got, ok := parseCount(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseCount(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCutEscaped(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"abcdef", 6, "abc…"},
		{"a&b&c", 9, "a&…"}, // a(1) + &amp;(5) + …(3) = 9
		{"Ünïcode", 7, "Ün…"},
		{"ab", 2, "…"},
		{"a    b", 6, "a…"},
	}
	for _, tt := range tests {
		got := cutEscaped(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("cutEscaped(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if tt.max >= len(Ellipsis) && xmlLen(got) > tt.max {
			t.Errorf("cutEscaped(%q, %d) = %q: escaped length %d", tt.in, tt.max, got, xmlLen(got))
		}
	}
}

func TestShrink(t *testing.T) {
	long := strings.Repeat("x", 1000)
	mid := strings.Repeat("y", 300)
	short := "short"
	a, b, c := long, mid, short
	if !shrink([]*string{&a, &b, &c}, 500) {
		t.Fatal("shrink reported it cannot save 500 bytes")
	}
	saved := (len(long) + len(mid) + len(short)) - (xmlLen(a) + xmlLen(b) + xmlLen(c))
	if saved < 500 {
		t.Errorf("saved %d bytes, want ≥ 500", saved)
	}
	if c != short || b != mid {
		t.Errorf("shorter fields were cut: b=%d bytes, c=%q", len(b), c)
	}
	if !strings.HasSuffix(a, Ellipsis) {
		t.Errorf("cut field %q does not end with the ellipsis", a[len(a)-10:])
	}

	// Spread: two equally long fields share the cut.
	a, b = long, long
	if !shrink([]*string{&a, &b}, 1000) {
		t.Fatal("shrink failed")
	}
	if len(a) != len(b) || len(a) > 500 {
		t.Errorf("cut unevenly or too little: %d and %d bytes", len(a), len(b))
	}

	// Impossible.
	a = "abcdef"
	if shrink([]*string{&a}, 10) {
		t.Error("shrink claimed to save 10 bytes from a 6-byte field")
	}
}

// TestTileFieldTable checks that the field table, the config keys and the
// Tile struct fields line up.
func TestTileFieldTable(t *testing.T) {
	var tile Tile
	for i := range tileFields {
		tile.field(i).Value = tileFields[i].key
	}
	rv := reflect.ValueOf(tile)
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if f.Type != reflect.TypeOf(Field{}) {
			continue
		}
		var snake strings.Builder
		for j, r := range f.Name {
			if unicode.IsUpper(r) && j > 0 {
				snake.WriteByte('_')
			}
			snake.WriteRune(unicode.ToLower(r))
		}
		if got := rv.Field(i).Interface().(Field).Value; got != snake.String() {
			t.Errorf("Tile.%s holds key %q, want %q", f.Name, got, snake.String())
		}
	}
}
