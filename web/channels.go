package web

import (
	"bytes"
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

// registration is the POST /v1/channels body.
type registration struct {
	URI    string   `json:"uri"`
	User   string   `json:"user"`
	Feeds  []string `json:"feeds"`
	Device string   `json:"device"`
	// Transport is "mpns", "wns" or "webpush"; "" infers it from the URI
	// (tilecast.InferTransport).
	Transport string `json:"transport"`
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
	if aerr == nil {
		aerr = s.check(&reg)
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
	ch, created, err := s.opts.Store.AddChannel(tilecast.Channel{
		URI: reg.URI, User: reg.User, Feeds: reg.Feeds, Device: reg.Device, Transport: tilecast.Transport(reg.Transport),
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	// The URI is a capability (whoever has it can push to the phone), so
	// only the channel id is logged.
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
	writeJSON(w, status, ch)
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
		return reg, refuse(http.StatusBadRequest, "empty body: want a JSON object with \"uri\"")
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

// check applies the registration rules to reg, canonicalises its URI and
// settles its transport.
func (s *Server) check(reg *registration) *apiError {
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
	if err := CheckRegistration(&ch, rules, s.feeds()); err != nil {
		var aerr *apiError
		errors.As(err, &aerr)
		return aerr
	}
	reg.URI, reg.Transport = ch.URI, string(ch.Transport)
	return nil
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
		return refuse(http.StatusBadRequest, "uri is required")
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
	writePage(w, r, chs, next, page.limit)
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
		writeJSON(w, http.StatusOK, ch)
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
