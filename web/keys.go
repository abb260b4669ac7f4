package web

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Role is what an API key may do (design.md §11). An app key ships inside
// apps, so anyone may hold it: it registers channels and manages only a
// channel it names by id and URI together. An admin key is the operator's:
// it may do everything.
type Role int

// The roles, weakest first: a route open to RoleApp is open to RoleAdmin.
const (
	RoleApp Role = iota + 1
	RoleAdmin
)

// String returns the role as the keys file and the API's 403 answers
// write it: "app" or "admin".
func (r Role) String() string {
	switch r {
	case RoleApp:
		return "app"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// valid reports whether r is one of the roles.
func (r Role) valid() bool { return r == RoleApp || r == RoleAdmin }

// allows reports whether a key of role r may use a route that needs need.
func (r Role) allows(need Role) bool { return r.valid() && need.valid() && r >= need }

// KeyEntry is one key of an API keys file.
type KeyEntry struct {
	Line int    // 1-based line number
	Role Role   // RoleApp or RoleAdmin
	Key  string // the secret itself: never log or print it
	// Bare marks a line with the key alone, as before roles existed: an
	// admin key, which `tilecast check` asks to be written "admin KEY".
	Bare bool
}

// minKeyChars is the shortest key that can hold 128 random bits (base64).
const minKeyChars = 22

// Short reports whether the key is too short to hold 128 random bits.
func (k KeyEntry) Short() bool { return len(k.Key) < minKeyChars }

// ReadKeyFile reads an API keys file: one key a line, written "admin KEY"
// or "app KEY" (a bare "KEY" is an admin key, so files from before roles
// keep working); blank lines and lines starting with # are ignored. Its
// errors name the file and line, never the line's text: it may be a key.
func ReadKeyFile(path string) ([]KeyEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read api keys file: %w (create it with one \"admin KEY\" or \"app KEY\" line per key, or set http.api_keys_file = \"\" to disable the API)", err)
	}
	return ParseKeys(path, data)
}

// ParseKeys parses the contents of an API keys file; name is used in
// errors. See ReadKeyFile.
func ParseKeys(name string, data []byte) ([]KeyEntry, error) {
	var keys []KeyEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// Nothing below quotes the line or a word of it: a key written
		// with a typo in its role word is still a secret.
		if strings.ContainsFunc(line, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return nil, fmt.Errorf("api keys file %s:%d: a key must not contain control characters", name, n)
		}
		e := KeyEntry{Line: n}
		switch f := strings.Fields(line); len(f) {
		case 1:
			e.Role, e.Key, e.Bare = RoleAdmin, f[0], true
		case 2:
			switch f[0] {
			case "admin":
				e.Role = RoleAdmin
			case "app":
				e.Role = RoleApp
			default:
				return nil, fmt.Errorf("api keys file %s:%d: the first word must be the role, admin or app (a line is \"admin KEY\", \"app KEY\" or a bare KEY)", name, n)
			}
			e.Key = f[1]
		default:
			return nil, fmt.Errorf("api keys file %s:%d: %d words: a line is \"admin KEY\", \"app KEY\" or a bare KEY, and a key has no spaces", name, n, len(f))
		}
		for _, prev := range keys {
			if prev.Key == e.Key {
				return nil, fmt.Errorf("api keys file %s:%d: the same key as line %d: one key has one role", name, n, prev.Line)
			}
		}
		keys = append(keys, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read api keys file %s: %w", name, err)
	}
	return keys, nil
}
