package web

import (
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	const k1, k2 = "key-one-0123456789abcdefgh", "key-two-0123456789abcdefgh"
	for _, tc := range []struct {
		name, file string
		want       []KeyEntry
		err        string // part of the error; "" for none
	}{
		{"bare", "# c\n\n" + k1 + "\n", []KeyEntry{{Line: 3, Role: RoleAdmin, Key: k1, Bare: true}}, ""},
		{"roles", "admin " + k1 + "\n  app\t" + k2 + "  \n", []KeyEntry{
			{Line: 1, Role: RoleAdmin, Key: k1}, {Line: 2, Role: RoleApp, Key: k2}}, ""},
		{"crlf", "app " + k1 + "\r\n", []KeyEntry{{Line: 1, Role: RoleApp, Key: k1}}, ""},
		{"empty", "# nothing\n", nil, ""},
		{"unknown role", "admin " + k1 + "\nAdmin " + k2 + "\n", nil, "f:2: the first word must be the role, admin or app"},
		{"three words", "app " + k1 + " " + k2 + "\n", nil, "f:1: 3 words"},
		{"control", "app " + k1 + "\x00\n", nil, "f:1: a key must not contain control characters"},
		{"same key twice", "admin " + k1 + "\napp " + k1 + "\n", nil, "f:2: the same key as line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeys("f", []byte(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				for _, secret := range []string{k1, k2, "Admin"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q quotes the line", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("key %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
