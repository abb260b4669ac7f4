package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
)

// ChannelURIHeader names the header in which an app key proves that it
// holds the channel it names by id (design.md §11). It is a header, never a
// query parameter, because query strings reach access logs and the URI is a
// capability: whoever has it can push to the phone.
const ChannelURIHeader = "X-Channel-URI"

// apiHandler serves an authenticated route; role is the caller's key's.
type apiHandler func(w http.ResponseWriter, r *http.Request, role Role)

// Route is one authenticated route and who may use it.
type Route struct {
	Pattern string // as http.ServeMux takes it: "GET /v1/channels/{id}"
	Role    Role   // the weakest role that may use it
	// ByURI: an app key must also send the {id} channel's URI in
	// X-Channel-URI; without it, or with another URI, the answer is the
	// unknown-channel 404. Admin keys need not.
	ByURI bool

	h apiHandler
}

// plain adapts a handler that does not care about the caller's role.
func plain(h http.HandlerFunc) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, _ Role) { h(w, r) }
}

// Routes lists the server's authenticated routes with the role each
// needs: the one table that routes() registers, so a route cannot exist
// without a role, and the tests walk the same list.
func (s *Server) Routes() []Route {
	rs := []Route{
		{Pattern: "POST /v1/channels", Role: RoleApp, h: s.register},
		{Pattern: "GET /v1/channels", Role: RoleAdmin, h: plain(s.listChannels)},
		{Pattern: "GET /v1/channels/{id}", Role: RoleApp, ByURI: true, h: plain(s.getChannel)},
		{Pattern: "DELETE /v1/channels/{id}", Role: RoleApp, ByURI: true, h: plain(s.deleteChannel)},
		{Pattern: "GET /v1/channels/{id}/outcomes", Role: RoleApp, ByURI: true, h: plain(s.outcomes)},
		{Pattern: "GET /v1/status", Role: RoleAdmin, h: plain(s.status)},
		{Pattern: "GET /v1/backup", Role: RoleAdmin, h: plain(s.backup)},
		{Pattern: "GET /v1/outcomes", Role: RoleAdmin, h: plain(s.allOutcomes)},
		{Pattern: "GET /v1/deadletters", Role: RoleAdmin, h: plain(s.deadLetters)},
	}
	if s.opts.MetricsRole != 0 {
		rs = append(rs, Route{Pattern: "GET /metrics", Role: s.opts.MetricsRole, h: plain(s.metricsHandler().ServeHTTP)})
	}
	return rs
}

// handle registers rt on mux behind its guard. A route without a valid
// role is a programming error and stops the server from being built, as
// a conflicting pattern does in http.ServeMux.
func (s *Server) handle(mux *http.ServeMux, rt Route) {
	if !rt.Role.valid() {
		panic(fmt.Sprintf("web: route %q registered without a role", rt.Pattern))
	}
	if rt.ByURI && !strings.Contains(rt.Pattern, "{id}") {
		panic(fmt.Sprintf("web: route %q proves a channel by URI but has no {id}", rt.Pattern))
	}
	mux.Handle(rt.Pattern, s.guard(rt))
}

// roleError is the 403 answer: the error and the role the route needs.
type roleError struct {
	Error string `json:"error"`
	Role  string `json:"role"`
}

// guard checks, in order: API enabled (503), a valid key (401, or 429
// when the source address has failed too often), the key's rate limit
// (429), the key's role (403) and, for an app key on a ByURI route, the
// channel's URI (404).
func (s *Server) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.APIKeysFile == "" {
			writeError(w, http.StatusServiceUnavailable, "api disabled: set http.api_keys_file")
			return
		}
		key, aerr := s.authenticate(r)
		if aerr != nil {
			if aerr.failed {
				if wait, ok := s.failedAuth(r); !ok {
					aerr = &authError{status: http.StatusTooManyRequests, retry: wait,
						msg: fmt.Sprintf("too many failed authentications from this address: retry in %d s", wait)}
				}
			}
			aerr.write(w)
			return
		}
		if wait, ok := s.allow(key.sum); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			writeError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limited: retry in %d s", wait))
			return
		}
		if !key.role.allows(rt.Role) {
			writeJSON(w, http.StatusForbidden, roleError{
				Error: fmt.Sprintf("%s needs an %s key; this is an %s key", rt.Pattern, rt.Role, key.role),
				Role:  rt.Role.String(),
			})
			return
		}
		if rt.ByURI && key.role == RoleApp {
			ok, err := s.holdsChannel(r)
			if err != nil {
				s.internalError(w, r, err)
				return
			}
			if !ok {
				channelNotFound(w, r.PathValue("id"))
				return
			}
		}
		rt.h(w, r, key.role)
	})
}

// holdsChannel reports whether the request's X-Channel-URI is the URI of
// the {id} channel, both in canonical form. A missing, repeated or
// invalid header is simply not a match.
func (s *Server) holdsChannel(r *http.Request) (bool, error) {
	vals := r.Header.Values(ChannelURIHeader)
	if len(vals) != 1 {
		return false, nil
	}
	uri, err := channeluri.Canonical(strings.TrimSpace(vals[0]))
	if err != nil {
		return false, nil
	}
	ch, err := s.opts.Store.Channel(r.PathValue("id"))
	switch {
	case errors.Is(err, tilecast.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(uri), []byte(ch.URI)) == 1, nil
}

// channelNotFound is the one answer for an unknown channel id, and for a
// known one whose URI the app key did not prove: the two must not differ.
func channelNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("channel %.64q not found", id))
}
