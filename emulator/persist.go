package emulator

// Saving and loading the emulator's devices (`tilecast emulate --state
// FILE`): without it a restarted emulator knows none of the channels the
// daemon registered, answers every push to them "Expired" (404), and the
// daemon deletes them. The file is JSON, written whole to a temp file and
// renamed over the old one, so a crash leaves either the old or the new
// state. Access tokens, held Web Push messages and live streams are not
// kept: the daemon fetches a new token when its old one is refused.

import (
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
)

// stateVersion is the layout of the state file; a file of another version
// is refused rather than half read.
const stateVersion = 1

type savedState struct {
	Version  int            `json:"version"`
	Seq      int            `json:"seq"`
	Phones   []savedPhone   `json:"phones"`
	Windows  []savedWindows `json:"windows"`
	Browsers []savedBrowser `json:"browsers"`
}

type savedTile struct {
	Kind    string            `json:"kind,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"` // MPNS element name → value
	Count   int               `json:"count"`
	Updated string            `json:"updated,omitempty"`
}

type savedPhone struct {
	Channel
	Params    Params               `json:"params"`
	Seq       int                  `json:"seq"`
	Counts    Counts               `json:"counts"`
	Day       int64                `json:"day"`
	Today     int                  `json:"today"`
	Primary   savedTile            `json:"primary"`
	Secondary map[string]savedTile `json:"secondary,omitempty"`
	Toasts    []ToastRecord        `json:"toasts,omitempty"` // oldest first
	Raw       []RawRecord          `json:"raw,omitempty"`
	Rejected  []Rejection          `json:"rejected,omitempty"`
}

type savedWindows struct {
	WindowsDevice
	Params   WNSParams      `json:"params"`
	Seq      int            `json:"seq"`
	Counts   WNSCounts      `json:"counts"`
	Tile     WindowsTile    `json:"tile"`
	Badge    string         `json:"badge,omitempty"`
	Toasts   []WindowsToast `json:"toasts,omitempty"`
	Raw      []RawRecord    `json:"raw,omitempty"`
	Rejected []Rejection    `json:"rejected,omitempty"`
}

type savedBrowser struct {
	Browser
	Params   BrowserParams     `json:"params"`
	Priv     []byte            `json:"private_key"` // P-256, the subscription's p256dh secret half
	Auth     []byte            `json:"auth"`
	Origin   string            `json:"origin"`
	Seq      int               `json:"seq"`
	MsgSeq   int               `json:"msg_seq"`
	Counts   BrowserCounts     `json:"counts"`
	Badge    int               `json:"badge"`
	Tile     *WebTile          `json:"tile,omitempty"`
	Notes    []WebNotification `json:"notes,omitempty"`
	Data     []RawRecord       `json:"data,omitempty"`
	Last     *WebPushRecord    `json:"last,omitempty"`
	Rejected []Rejection       `json:"rejected,omitempty"`
}

func saveTile(t *tile) savedTile {
	s := savedTile{Kind: t.kind, Count: t.count}
	if !t.updated.IsZero() {
		s.Updated = t.updated.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	}
	for f := field(0); f < nFields; f++ {
		if v := t.fields[f]; v != "" && f != fCount {
			if s.Fields == nil {
				s.Fields = map[string]string{}
			}
			s.Fields[f.String()] = v
		}
	}
	return s
}

func loadTile(s savedTile) (*tile, error) {
	t := newTile()
	t.kind, t.count = s.Kind, s.Count
	if s.Updated != "" {
		if err := t.updated.UnmarshalText([]byte(s.Updated)); err != nil {
			return nil, fmt.Errorf("tile updated: %w", err)
		}
	}
	for name, v := range s.Fields {
		f, ok := fieldByName(name)
		if !ok || f == fCount {
			return nil, fmt.Errorf("unknown tile element %q", name)
		}
		t.fields[f] = v
	}
	return t, nil
}

// Save writes every phone, Windows device and browser with what it shows
// as JSON to w.
func (e *Emulator) Save(w io.Writer) error {
	e.mu.Lock()
	st := savedState{Version: stateVersion, Seq: e.seq}
	for _, c := range e.sortedLocked() {
		p := savedPhone{Channel: c.Channel, Params: c.params, Seq: c.seq, Counts: c.counts, Day: c.day, Today: c.today,
			Primary: saveTile(c.primary), Toasts: c.toasts, Raw: c.raw, Rejected: c.rejected}
		for id, t := range c.secondary {
			if p.Secondary == nil {
				p.Secondary = map[string]savedTile{}
			}
			p.Secondary[id] = saveTile(t)
		}
		st.Phones = append(st.Phones, p)
	}
	for _, d := range e.wns.devices {
		st.Windows = append(st.Windows, savedWindows{WindowsDevice: d.WindowsDevice, Params: d.params, Seq: d.seq,
			Counts: d.counts, Tile: d.tile, Badge: d.badge, Toasts: d.toasts, Raw: d.raw, Rejected: d.rejected})
	}
	for _, b := range e.browsers {
		st.Browsers = append(st.Browsers, savedBrowser{Browser: b.Browser, Params: b.params, Priv: b.priv.Bytes(),
			Auth: b.auth, Origin: b.origin, Seq: b.seq, MsgSeq: b.msgSeq, Counts: b.counts, Badge: b.badge,
			Tile: b.tile, Notes: b.notes, Data: b.data, Last: b.last, Rejected: b.rejected})
	}
	// Marshalled under the lock: the slices above are the live ones.
	data, err := json.MarshalIndent(st, "", " ")
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// Load adds the devices of a state Save wrote. A device whose token is
// already known is an error, as is a file of another layout.
func (e *Emulator) Load(r io.Reader) error {
	var st savedState
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("emulator state: version %d, this emulator reads version %d", st.Version, stateVersion)
	}
	phones := make(map[string]*channel, len(st.Phones))
	for i, p := range st.Phones {
		if !validBehaviour(p.Behaviour) || p.Token == "" {
			return fmt.Errorf("emulator state: phone %d (%q): bad token or behaviour %q", i+1, p.Name, p.Behaviour)
		}
		c := &channel{Channel: p.Channel, params: p.Params, seq: p.Seq, counts: p.Counts, day: p.Day, today: p.Today,
			secondary: make(map[string]*tile, len(p.Secondary)), toasts: p.Toasts, raw: p.Raw, rejected: p.Rejected}
		var err error
		if c.primary, err = loadTile(p.Primary); err != nil {
			return fmt.Errorf("emulator state: phone %q: %w", p.Name, err)
		}
		for id, s := range p.Secondary {
			if c.secondary[id], err = loadTile(s); err != nil {
				return fmt.Errorf("emulator state: phone %q, tile %q: %w", p.Name, id, err)
			}
		}
		phones[p.Token] = c
	}
	devices := make(map[string]*windowsDevice, len(st.Windows))
	for i, d := range st.Windows {
		if d.Token == "" {
			return fmt.Errorf("emulator state: Windows device %d (%q) has no token", i+1, d.Name)
		}
		if !validWNSBehaviour(d.Behaviour) {
			return fmt.Errorf("emulator state: Windows device %d (%q): behaviour %q is not one of %s",
				i+1, d.Name, d.Behaviour, orList(windowsBehaviours))
		}
		devices[d.Token] = &windowsDevice{WindowsDevice: d.WindowsDevice, params: d.Params, seq: d.Seq, counts: d.Counts,
			tile: d.Tile, badge: d.Badge, toasts: d.Toasts, raw: d.Raw, rejected: d.Rejected}
	}
	browsers := make(map[string]*browser, len(st.Browsers))
	for i, b := range st.Browsers {
		if b.Token == "" {
			return fmt.Errorf("emulator state: browser %d (%q) has no token", i+1, b.Name)
		}
		if !validBrowserBehaviour(b.Behaviour) {
			return fmt.Errorf("emulator state: browser %d (%q): behaviour %q is not one of %s",
				i+1, b.Name, b.Behaviour, orList(browserBehaviours))
		}
		priv, err := ecdh.P256().NewPrivateKey(b.Priv)
		if err != nil {
			return fmt.Errorf("emulator state: browser %d (%q): bad key: %w", i+1, b.Name, err)
		}
		browsers[b.Token] = &browser{Browser: b.Browser, params: b.Params, priv: priv, auth: b.Auth, origin: b.Origin,
			seq: b.Seq, msgSeq: b.MsgSeq, counts: b.Counts, badge: b.Badge, tile: b.Tile, notes: b.Notes, data: b.Data,
			last: b.Last, rejected: b.Rejected}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for tok := range phones {
		if e.channels[tok] != nil {
			return fmt.Errorf("emulator state: channel %s already exists", tok)
		}
	}
	for tok := range devices {
		if e.wns.devices[tok] != nil {
			return fmt.Errorf("emulator state: Windows device %s already exists", tok)
		}
	}
	for tok := range browsers {
		if e.browsers[tok] != nil {
			return fmt.Errorf("emulator state: browser %s already exists", tok)
		}
	}
	maps.Copy(e.channels, phones)
	maps.Copy(e.wns.devices, devices)
	if len(browsers) > 0 {
		if e.browsers == nil {
			e.browsers = make(map[string]*browser, len(browsers))
		}
		maps.Copy(e.browsers, browsers)
	}
	e.seq = max(e.seq, st.Seq)
	e.changedLocked()
	return nil
}

// SaveFile writes the state to path atomically: a temp file in the same
// directory, synced, then renamed over path.
func (e *Emulator) SaveFile(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	defer os.Remove(f.Name()) // gone after the rename; cleans up a failure
	if err := e.Save(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("emulator state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	return nil
}

// LoadFile loads the state at path; a missing file is no error (a first
// start) and loads nothing.
func (e *Emulator) LoadFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	defer f.Close()
	if err := e.Load(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Version is a number that changes whenever any device's state does, so a
// caller saving the state knows when there is something new to save.
func (e *Emulator) Version() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.version
}
