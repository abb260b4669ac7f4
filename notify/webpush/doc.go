// Package webpush is tilecast's Web Push transport: the browser push of
// RFC 8030 with payload encryption (RFC 8291, aes128gcm) and VAPID
// (RFC 8292), for Chrome, Edge, Firefox and Safari, installed web apps
// included. It has the parts one protocol package has in tilecast:
//
//   - subscriptions: ParseSubscription reads a browser's
//     PushSubscription.toJSON() and checks its endpoint and keys
//     (errors name the field, "keys.p256dh: …");
//   - the payload builder: the JSON the shipped service worker shows —
//     ToastPayload, TilePayload, BadgePayload, and Encoder, a
//     notify.Encoder that renders a feed's templates into it, always
//     within MaxPlaintext (3,993) bytes, and Renderer, the daemon's
//     renderer of Web Push channels (one push per tile update);
//   - encryption: Encrypt (one record, no padding unless asked, body at
//     most 4,096 bytes) and Decrypt, on crypto/ecdh, crypto/hkdf and
//     AES-GCM;
//   - VAPID: keys in npm web-push's base64url form or PEM
//     (ParseVAPIDKey, LoadVAPIDKey, GenerateKey), the subject check
//     (CheckSubject) and a Signer that signs an ES256 token per push
//     service origin and reuses it until near its expiry;
//   - the request: NewRequest (TTL, Urgency, Topic, Content-Encoding,
//     Authorization) and DumpRequest for dry runs;
//   - the response classifier (Classify) and a Client implementing
//     tilecast.Pusher through notify/pushhttp, which also pauses a push
//     service that keeps refusing the VAPID key and reports it (Degraded;
//     a paused push matches tilecast.ErrCircuitOpen: not sent, no
//     attempt; a refusal matches tilecast.ErrCredentials).
//
// Encryption and signing happen when a request is built, at send time,
// from the plaintext the outbox keeps: keys may change between enqueue
// and send, and the TTL sent is what is left of the notification's time
// to live.
//
// Why not github.com/SherClockHolmes/webpush-go (protocols.md §4.5): it
// pads every body to the record size, sends TTL 0 by default, doubles a
// "mailto:" subject, writes into the caller's buffer and uses the
// deprecated crypto/elliptic calls; the RFC 8291 part is small on the
// standard library's crypto/ecdh and crypto/hkdf, and is checked here
// against RFC 8291 Appendix A's exact bytes and against the Node
// reference implementation (scripts/webpush-interop.sh).
package webpush
