// Package wns speaks the Windows Push Notification Services wire protocol
// (protocols.md §3): it builds toast, tile, badge and raw payloads from
// notify's payload model (Encoder), builds their requests (NewRequest),
// gets and renews the OAuth access token every send needs (TokenSource),
// sends through notify/pushhttp (Client, a tilecast.Pusher) and classifies
// WNS answers (Classify).
//
// # Payloads
//
// By default a toast is a ToastGeneric toast (text1 and text2 as its two
// texts, param as launch), a tile an adaptive tile with TileSmall,
// TileMedium, TileWide and TileLarge bindings (title as the display name,
// the newest item as text, an image as background), and a tile's count a
// badge notification of its own (kind badge). EncoderOptions add what
// Windows has beyond MPNS (audio, hero and app-logo images, a toast
// scenario). With Legacy set the encoder sends the Windows 8 templates
// (ToastText01/02, TileSquareText04 + TileWideText09, …) as the npm module
// wns 0.5.4 wrote them, byte for byte; LegacyToast and LegacyTile build any
// single template of that kind.
//
// # Differences from wns 0.5.4
//
// tilecast follows the module's payloads and headers (goldens in
// testdata/golden, captured from it) except where the module was wrong or
// short of what WNS documents:
//
//   - Escaping is the module's four-character rule (& < > ") plus: a
//     carriage return is written as &#13; everywhere, and tab and newline
//     in attribute values as &#9; and &#10;, because an XML parser would
//     otherwise turn them into a newline or a space and the device would
//     not see what was sent; characters XML 1.0 forbids are removed
//     (notify.Fit), where the module sent XML WNS refused. Attributes the
//     module wrote unescaped (duration, lang) are escaped too, and the
//     badge value is a number tilecast writes itself.
//   - A badge count of 0 is sent as value="none", the documented way to
//     clear a badge (the module sent "0").
//   - Payloads are held to WNS's 5,000-byte limit: text is cut on a
//     character boundary with "…" (notify.Fit); the module checked nothing
//     and got 413.
//   - Requests also carry X-WNS-RequestForStatus: true, X-WNS-TTL (the
//     notification's remaining time to live), X-WNS-Tag for tiles and
//     badges (derived from the feed name by Tag) and X-WNS-Cache-Policy
//     (cache for tiles and badges, no-cache for raw).
//   - The channel URI's port is kept (the module always dialled 443), and
//     a channel URI must be https on *.notify.windows.com (CheckChannelURI),
//     so the access token never goes to another host.
//   - Both status headers are read: X-WNS-Status (current) and
//     X-WNS-NotificationStatus (the module's only one; it took every answer
//     without it as a failure).
//   - Every answer is acted on (Classify): 404 and 410 remove the channel,
//     406, 429 and 200 channelthrottled/dropped retry after
//     X-WNS-CONTINUE-AFTER or Retry-After, 5xx and network errors retry;
//     the module only reported an error.
//   - The access token comes from either flow (Entra ID or the classic
//     login.live.com one), is shared by all sends, and is renewed before it
//     expires as well as after a 401 (TokenSource). Its request body is the
//     module's, byte for byte (golden toast-401-then-token-refresh).
//   - A 401 is resent once with a new token within the same Push
//     (Result.TokenRefreshed), as the module did; a second 401 fails the
//     notification and pauses every WNS send until a probe's token works
//     (Client), where the module simply failed that one send.
//
// # What the deliverer gets
//
// Client.Push never returns an error: every outcome is a tilecast.Result.
// A push the Client did not make (no token yet, or the pause after a
// refused token) has Status 0 and an Err that is a *NotSentError and
// matches tilecast.ErrCircuitOpen, with Wait until the next try; a 403, or
// a 401 with a renewed token, wraps tilecast.ErrCredentials; a gone
// channel wraps tilecast.ErrChannelExpired. MsgID, DebugTrace,
// CorrelationVector and Device carry WNS's X-WNS-Msg-ID,
// X-WNS-Debug-Trace, MS-CV and X-WNS-DeviceConnectionStatus, and
// Client.Degraded says when WNS sends are impaired from outside.
package wns
