package emulator

import (
	"slices"
	"strings"
)

// The behaviours each kind of device accepts, in the order
// `tilecast emulate --help` lists them. Creating a device and changing its
// behaviour accept exactly these (validBehaviour and its siblings), so the
// help, whose test reads these lists, cannot name one the emulator refuses
// nor leave out one it plays.
var (
	phoneBehaviours   = []string{Healthy, Expired, Inactive, QueueFull, Suppressed, Flaky, Slow}
	windowsBehaviours = []string{Healthy, Revoked, Unknown, Throttled, WrongApp, Flaky, Slow}
	browserBehaviours = []string{Healthy, Offline, Unsubscribed, Expired, RateLimited, Flaky, Slow}
)

// PhoneBehaviours returns the behaviours an emulated phone (an MPNS
// channel: POST /channels without a transport) accepts.
func PhoneBehaviours() []string { return slices.Clone(phoneBehaviours) }

// WindowsBehaviours returns the behaviours an emulated Windows device
// (POST /channels {"transport":"wns"}) accepts.
func WindowsBehaviours() []string { return slices.Clone(windowsBehaviours) }

// BrowserBehaviours returns the behaviours an emulated browser
// (POST /channels {"transport":"webpush"}) accepts.
func BrowserBehaviours() []string { return slices.Clone(browserBehaviours) }

func validBehaviour(b string) bool        { return slices.Contains(phoneBehaviours, b) }
func validWNSBehaviour(b string) bool     { return slices.Contains(windowsBehaviours, b) }
func validBrowserBehaviour(b string) bool { return slices.Contains(browserBehaviours, b) }

// orList joins names as "a, b or c", for error messages.
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
