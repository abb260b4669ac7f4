package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/notify/webpush"
)

// Limits of a registration's other fields. The store accepts more; these
// keep index keys, logs and error messages small.
const (
	maxNameLen  = 256 // user, device
	maxFeedList = 256
)

// DefaultOutcomesSince is how far back GET /v1/channels/{id}/outcomes looks
// without ?since: the whole ledger, which keeps 7 days.
const DefaultOutcomesSince = 7 * 24 * time.Hour

// registration is the POST /v1/channels body: a channel URI, or a Web
// Push subscription as the browser's PushSubscription.toJSON() gives it.
type registration struct {
	URI    string   `json:"uri"`
	User   string   `json:"user"`
	Feeds  []string `json:"feeds"`
	Device string   `json:"device"`
	// Transport is "mpns", "wns" or "webpush"; "" infers it from the URI
	// (tilecast.InferTransport; a subscription is webpush).
	Transport string `json:"transport"`
	// Subscription is a Web Push subscription, {"endpoint",
	// "expirationTime", "keys": {"p256dh", "auth"}} with the browser's
	// field names (ApplySubscription), in place of uri.
	Subscription json.RawMessage `json:"subscription"`
}

// hasSubscription reports whether the registration carries one (null is
// none).
func (r *registration) hasSubscription() bool {
	return len(r.Subscription) > 0 && !bytes.Equal(bytes.TrimSpace(r.Subscription), []byte("null"))
}

// apiError is a refusal with its status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, role Role) {
	reg, aerr := decodeRegistration(w, r)
	var ch tilecast.Channel
	if aerr == nil {
		ch, aerr = s.check(&reg)
	}
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return
	}
	if err := s.checkUserToken(r, role, reg.User); err != nil {
		// The token is a credential: only the reason is logged.
		s.log.Warn("registration refused: user token", "user", reg.User, "remote", r.RemoteAddr, "reason", err.Error())
		writeJSON(w, http.StatusForbidden, roleError{
			Error: fmt.Sprintf("user %.64q needs a valid %s from the app's backend (or an admin key): %v", reg.User, UserTokenHeader, err),
			Role:  RoleAdmin.String(),
		})
		return
	}
	ch, created, err := s.opts.Store.AddChannel(ch)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	// The URI is a capability (whoever has it can push to the phone), and
	// a subscription's keys encrypt what reaches the browser, so only the
	// channel id is logged.
	s.log.Info("channel registered", "channel", ch.ID, "user", ch.User, "device", ch.Device, "transport", string(ch.Transport), "new", created)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/channels/"+url.PathEscape(ch.ID))
		if s.opts.Subscribe != nil {
			if err := s.opts.Subscribe(ch); err != nil {
				s.log.Warn("tile on subscribe failed", "channel", ch.ID, "err", err)
			}
		}
	}
	writeJSON(w, status, View(ch))
}

// decodeRegistration reads one JSON object of at most MaxBody bytes with
// field names spelled exactly, none repeated, none unknown and nothing
// after it.
func decodeRegistration(w http.ResponseWriter, r *http.Request) (registration, *apiError) {
	var reg registration
	tooLarge := refuse(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", MaxBody)
	if r.ContentLength > MaxBody {
		w.Header().Set("Connection", "close") // do not read it to reuse the connection
		return reg, tooLarge
	}
	// Reading it whole (it is small) lets the key check and the decoder
	// see the same bytes, and a body over the limit be 413 even when its
	// first object is short.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err == nil {
		reg, err = parseRegistration(data)
		var aerr *apiError
		if errors.As(err, &aerr) {
			return reg, aerr
		}
	}
	if err == nil {
		return reg, nil
	}
	var maxErr *http.MaxBytesError
	var synErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		w.Header().Set("Connection", "close")
		return reg, tooLarge
	case errors.Is(err, io.EOF):
		return reg, refuse(http.StatusBadRequest, "empty body: want a JSON object with \"uri\" (or a Web Push \"subscription\")")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return reg, refuse(http.StatusBadRequest, "malformed JSON: unexpected end of body")
	case errors.As(err, &synErr):
		return reg, refuse(http.StatusBadRequest, "malformed JSON at byte %d: %s", synErr.Offset, strings.TrimPrefix(synErr.Error(), "json: "))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return reg, refuse(http.StatusBadRequest, "malformed JSON: want an object, got %s", typeErr.Value)
		}
		return reg, refuse(http.StatusBadRequest, "malformed JSON: field %q must be %s, got %s", typeErr.Field, fieldWant(typeErr.Field), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// checkKeys refuses unknown top-level names first; this is a
		// backstop should the two ever disagree.
		return reg, refuse(http.StatusBadRequest, "unknown field %s: want %s", strings.TrimPrefix(err.Error(), "json: unknown field "), strings.Join(registrationFields(), ", "))
	}
	return reg, refuse(http.StatusBadRequest, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// registrationFields returns the registration's JSON names, from its tags.
func registrationFields() []string { return jsonFields(reflect.TypeFor[registration]()) }

// parseRegistration decodes one registration body: checkKeys, then
// encoding/json with unknown fields refused and nothing after the object.
// A refusal of checkKeys or of trailing data is an *apiError; anything
// else is the decoder's error for decodeRegistration to word.
func parseRegistration(data []byte) (registration, error) {
	var reg registration
	if aerr := checkKeys(data, registrationFields()); aerr != nil {
		return reg, aerr
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		return reg, err
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return reg, nil
	case err == nil:
		return reg, refuse(http.StatusBadRequest, "malformed JSON: more than one value in the body")
	default:
		return reg, err
	}
}

// fieldWant names the JSON type a registration field takes.
func fieldWant(field string) string {
	if field == "feeds" || strings.HasPrefix(field, "feeds.") {
		return "a list of strings"
	}
	return "a string"
}

// check applies the registration rules to reg and returns the channel to
// store: its URI canonical (a subscription's endpoint), its transport
// settled, a subscription's keys and expiry set.
func (s *Server) check(reg *registration) (tilecast.Channel, *apiError) {
	var rules channeluri.Rules
	if s.opts.AllowedHosts != nil {
		rules.AllowedHosts = s.opts.AllowedHosts()
	}
	if s.opts.AllowPrivate != nil {
		rules.AllowPrivate = s.opts.AllowPrivate()
	}
	if s.opts.TransportHosts != nil {
		rules.TransportHosts = s.opts.TransportHosts()
	}
	ch := tilecast.Channel{URI: reg.URI, User: reg.User, Feeds: reg.Feeds, Device: reg.Device,
		Transport: tilecast.Transport(reg.Transport)}
	var err error
	if reg.hasSubscription() {
		if reg.URI != "" {
			return ch, refuse(http.StatusBadRequest, "give uri or subscription, not both: a Web Push channel's uri is its subscription's endpoint")
		}
		err = ApplySubscription(&ch, reg.Subscription, rules.AllowPrivate, s.now())
	}
	if err == nil {
		err = CheckRegistration(&ch, rules, s.feeds())
	}
	if err != nil {
		var aerr *apiError
		errors.As(err, &aerr)
		return ch, aerr
	}
	return ch, nil
}

// ApplySubscription reads a Web Push subscription — the browser's
// PushSubscription.toJSON(), with its field names: {"endpoint",
// "expirationTime", "keys": {"p256dh", "auth"}} — into ch: the endpoint
// becomes ch.URI, the keys ch.Keys, expirationTime (milliseconds) ch.Expires,
// and the transport webpush unless ch names one (which CheckRegistration
// then refuses unless it is webpush). The keys are checked (p256dh a point
// on P-256, auth 16 bytes); an http endpoint is accepted only on a loopback
// host with allowLoopbackHTTP (push.allow_private: the emulator); an
// expirationTime not after now is refused. A refusal is a 400 naming the
// field as the API's JSON has it ("subscription.keys.p256dh: not a point
// on P-256") and never contains key material. The API, channels add
// --subscription and channels import use it, then CheckRegistration.
func ApplySubscription(ch *tilecast.Channel, raw []byte, allowLoopbackHTTP bool, now time.Time) error {
	sub, err := webpush.ParseSubscription(raw, webpush.ParseOptions{AllowLoopbackHTTP: allowLoopbackHTTP})
	if err != nil {
		var fe *webpush.FieldError
		if errors.As(err, &fe) {
			if fe.Field == "" {
				return refuse(http.StatusBadRequest, "subscription: %s", fe.Msg)
			}
			return refuse(http.StatusBadRequest, "subscription.%s: %s", fe.Field, fe.Msg)
		}
		return refuse(http.StatusBadRequest, "subscription: %v", err)
	}
	if !sub.Expires.IsZero() && !sub.Expires.After(now) {
		return refuse(http.StatusBadRequest, "subscription.expirationTime: %d is %s, already past: the browser has let the subscription lapse",
			sub.Expires.UnixMilli(), sub.Expires.UTC().Format(time.RFC3339))
	}
	ch.URI, ch.Keys, ch.Expires = sub.Endpoint, sub.PushKeys(), sub.Expires
	if ch.Transport == "" {
		ch.Transport = tilecast.TransportWebPush
	}
	return nil
}

// ChannelView is a channel as the API (and the CLI) shows it: the stored
// channel (never its keys: tilecast.Channel leaves them out of JSON) and,
// for a Web Push channel, what identifies its subscription without being
// a capability.
type ChannelView struct {
	tilecast.Channel
	Subscription *SubscriptionView `json:"subscription,omitempty"`
}

// SubscriptionView shows a Web Push subscription: the push service it is
// at and a hash of its keys, which tells a re-subscription with new keys
// from one with the same, and never the keys themselves.
type SubscriptionView struct {
	Origin string `json:"origin"` // the endpoint's origin: the push service
	// KeysSHA256 is the hex SHA-256 of p256dh followed by auth.
	KeysSHA256 string `json:"keys_sha256"`
}

// View returns ch as the API shows it.
func View(ch tilecast.Channel) ChannelView {
	v := ChannelView{Channel: ch}
	if ch.Keys != nil {
		origin, err := webpush.Origin(ch.URI)
		if err != nil {
			origin = ""
		}
		h := sha256.New()
		h.Write(ch.Keys.P256DH)
		h.Write(ch.Keys.Auth)
		v.Subscription = &SubscriptionView{Origin: origin, KeysSHA256: hex.EncodeToString(h.Sum(nil))}
	}
	v.Keys = nil
	return v
}

// viewsOf returns a page of channels as the API shows them.
func viewsOf(chs []tilecast.Channel) []ChannelView {
	out := make([]ChannelView, len(chs))
	for i := range chs {
		out[i] = View(chs[i])
	}
	return out
}

// CheckRegistration applies the registration rules to ch — the URI checks
// of channeluri.CheckChannel (a usable http(s) URL whose host is in
// push.allowed_hosts and fits the transport: WNS channels https on
// *.notify.windows.com, …), sane user and device ids, known feed names, a
// user for per-user feeds — canonicalises ch.URI and sets ch.Transport
// (inferred when ch names none; Keys say a Web Push subscription). The
// API, the CLI's channels add and channels import all use it, so a
// refusal reads the same whichever door a channel came in by; the store
// canonicalises again on its own, so no door can store a second spelling.
// A refusal's message is the one the API answers with (400, or 422 for a
// host or feed problem).
func CheckRegistration(ch *tilecast.Channel, rules channeluri.Rules, feeds []tilecast.Feed) error {
	if ch.URI == "" {
		return refuse(http.StatusBadRequest, "uri is required (or, for Web Push, subscription)")
	}
	uri, transport, err := channeluri.CheckChannel(ch.URI, ch.Transport, ch.Keys != nil, rules)
	if err != nil {
		if errors.Is(err, tilecast.ErrHostNotAllowed) {
			return refuse(http.StatusUnprocessableEntity, "%s", err)
		}
		return refuse(http.StatusBadRequest, "%s", err)
	}
	ch.URI, ch.Transport = uri, transport
	if err := checkName("user", ch.User); err != nil {
		return err
	}
	// The store's rule for user names (no bidi controls either), refused
	// here as a 400 rather than by the store as a 500.
	if err := tilecast.CheckUser(ch.User); err != nil {
		return refuse(http.StatusBadRequest, "user: %s", strings.TrimPrefix(err.Error(), tilecast.ErrBadUser.Error()+": "))
	}
	if err := checkName("device", ch.Device); err != nil {
		return err
	}
	if len(ch.Feeds) > maxFeedList {
		return refuse(http.StatusBadRequest, "feeds lists %d names, more than %d", len(ch.Feeds), maxFeedList)
	}
	byName := make(map[string]*tilecast.Feed, len(feeds))
	for i := range feeds {
		byName[feeds[i].Name] = &feeds[i]
	}
	var unknown []string
	for _, name := range ch.Feeds {
		f, ok := byName[name]
		switch {
		case !ok:
			if len(unknown) < 5 {
				unknown = append(unknown, fmt.Sprintf("%.64q", name))
			}
		case f.PerUser() && ch.User == "":
			return refuse(http.StatusUnprocessableEntity, "feed %q is per-user ({user} in its url): a user is required", name)
		}
	}
	if len(unknown) > 0 {
		return refuse(http.StatusUnprocessableEntity, "unknown feed %s", strings.Join(unknown, ", "))
	}
	return nil
}

// checkName refuses a user or device id that would be awkward in logs,
// URLs and index keys.
func checkName(field, v string) *apiError {
	switch {
	case len(v) > maxNameLen:
		return refuse(http.StatusBadRequest, "%s is %d bytes, more than %d", field, len(v), maxNameLen)
	case !utf8.ValidString(v):
		return refuse(http.StatusBadRequest, "%s is not valid UTF-8", field)
	case strings.ContainsFunc(v, unicode.IsControl):
		return refuse(http.StatusBadRequest, "%s contains a control character", field)
	}
	return nil
}

// listChannels answers a page of channels in ID order; ?user= narrows it.
func (s *Server) listChannels(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, aerr := parsePage(q)
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return
	}
	chs, next, err := s.opts.Store.ChannelsPage(tilecast.ChannelFilter{User: q.Get("user")}, page.cursor, page.limit)
	if err != nil {
		s.listError(w, r, err)
		return
	}
	writePage(w, r, viewsOf(chs), next, page.limit)
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ch, err := s.opts.Store.Channel(id)
	switch {
	case errors.Is(err, tilecast.ErrNotFound):
		channelNotFound(w, id)
	case err != nil:
		s.internalError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, View(ch))
	}
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.opts.Store.RemoveChannel(id)
	switch {
	case errors.Is(err, tilecast.ErrNotFound):
		channelNotFound(w, id)
	case err != nil:
		s.internalError(w, r, err)
	default:
		s.log.Info("channel removed by api", "channel", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// outcomes answers a page of a channel's delivery ledger, oldest first.
// The ledger outlives the channel, so a removed channel with entries
// still answers (its last entry says why it was removed); 404 only when
// there is neither.
func (s *Server) outcomes(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	since, aerr := parseSince(q.Get("since"), s.now())
	var page pageParams
	if aerr == nil {
		page, aerr = parsePage(q)
	}
	if aerr != nil {
		writeError(w, aerr.status, aerr.msg)
		return
	}
	_, chErr := s.opts.Store.Channel(id)
	if chErr != nil && !errors.Is(chErr, tilecast.ErrNotFound) {
		s.internalError(w, r, chErr)
		return
	}
	out, next, err := s.opts.Store.OutcomesPage(tilecast.OutcomeFilter{Channel: id, Feed: q.Get("feed"), Since: since}, page.cursor, page.limit)
	if err != nil {
		s.listError(w, r, err)
		return
	}
	if chErr != nil && len(out) == 0 && page.cursor == "" {
		channelNotFound(w, id)
		return
	}
	writePage(w, r, out, next, page.limit)
}

// parseSince reads ?since= as a duration back from now ("24h") or an
// RFC 3339 time; "" is DefaultOutcomesSince.
func parseSince(v string, now time.Time) (time.Time, *apiError) {
	if v == "" {
		return now.Add(-DefaultOutcomesSince), nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, refuse(http.StatusBadRequest, "since must be a positive duration such as 24h, got %.64q", v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, refuse(http.StatusBadRequest, "since must be a duration such as 24h or an RFC 3339 time, got %.64q", v)
}
