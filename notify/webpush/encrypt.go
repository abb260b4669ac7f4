package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tilecast/tilecast"
)

// Sizes of an aes128gcm push message (RFC 8188 §2, RFC 8291 §4).
const (
	// MaxBody is the largest body a push service must accept (RFC 8030
	// §7.2); tilecast never sends more.
	MaxBody = 4096
	// HeaderLen is the encryption header: salt (16), record size (4),
	// key id length (1) and the sender's ephemeral public key (65).
	HeaderLen = 16 + 4 + 1 + PublicKeyLen
	// TagLen is the AES-GCM authentication tag.
	TagLen = 16
	// MaxPlaintext is the largest plaintext that fits MaxBody in one
	// record: the body less the header, the tag and the delimiter byte.
	MaxPlaintext = MaxBody - HeaderLen - TagLen - 1 // 3993
	// RecordSize is the rs field written: a push message is one record
	// (RFC 8291 §4), and rs only has to be at least its length; 4096 is
	// what the RFC's example and npm web-push send.
	RecordSize = 4096
)

// Info strings of the key schedule (RFC 8291 §3.4, RFC 8188 §2.2–2.3).
const (
	infoWebPush = "WebPush: info\x00"
	infoCEK     = "Content-Encoding: aes128gcm\x00"
	infoNonce   = "Content-Encoding: nonce\x00"
)

// recordDelimiter ends the plaintext of the last (here: only) record.
const recordDelimiter = 0x02

// EncryptOptions tune Encrypt.
type EncryptOptions struct {
	// Pad, when > 0, pads the plaintext with zeros up to the next
	// multiple of Pad bytes (at most MaxPlaintext), so a push service or
	// an observer of the traffic learns only the size class of the
	// notification ([push.webpush] pad). 0 sends no padding: the body is
	// as short as the plaintext allows.
	Pad int

	// salt and ephemeral replace the random salt and the one-time key
	// pair; only the RFC 8291 test vector sets them.
	salt      []byte
	ephemeral *ecdh.PrivateKey
}

// Encrypt encrypts plaintext for sub as an aes128gcm push message body
// (RFC 8291): a fresh salt and a one-time ECDH key pair per message, one
// record of size RecordSize, no padding unless opts ask for it. The
// plaintext is not modified or kept. A plaintext longer than MaxPlaintext
// is refused with an error wrapping tilecast.ErrPayloadTooLarge (the
// payload builders cut texts to fit before it gets here); keys that are
// not a P-256 point and a 16-byte secret are refused too.
func Encrypt(sub Subscription, plaintext []byte, opts EncryptOptions) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("webpush: plaintext of %d bytes, limit %d: %w", len(plaintext), MaxPlaintext, tilecast.ErrPayloadTooLarge)
	}
	if opts.Pad < 0 {
		return nil, fmt.Errorf("webpush: pad %d is negative", opts.Pad)
	}
	uaPub, err := ecdh.P256().NewPublicKey(sub.P256DH)
	if err != nil {
		return nil, fmt.Errorf("webpush: keys.p256dh: not a point on P-256: %w", err)
	}
	if len(sub.Auth) != AuthLen {
		return nil, fmt.Errorf("webpush: keys.auth: %d bytes, want %d", len(sub.Auth), AuthLen)
	}
	eph := opts.ephemeral
	if eph == nil {
		if eph, err = ecdh.P256().GenerateKey(rand.Reader); err != nil {
			return nil, fmt.Errorf("webpush: ephemeral key: %w", err)
		}
	}
	salt := opts.salt
	if salt == nil {
		salt = make([]byte, 16)
		rand.Read(salt) // never fails (crypto/rand since Go 1.24)
	} else if len(salt) != 16 {
		return nil, errors.New("webpush: salt must be 16 bytes")
	}
	secret, err := eph.ECDH(uaPub)
	if err != nil {
		return nil, fmt.Errorf("webpush: ecdh: %w", err)
	}
	asPub := eph.PublicKey().Bytes()
	gcm, nonce, err := contentKeys(secret, sub.Auth, sub.P256DH, asPub, salt)
	if err != nil {
		return nil, err
	}

	padded := len(plaintext)
	if opts.Pad > 0 && padded%opts.Pad != 0 {
		padded += opts.Pad - padded%opts.Pad
	}
	padded = min(max(padded, len(plaintext)), MaxPlaintext)

	body := make([]byte, HeaderLen, HeaderLen+padded+1+TagLen)
	copy(body, salt)
	binary.BigEndian.PutUint32(body[16:20], RecordSize)
	body[20] = PublicKeyLen
	copy(body[21:], asPub)
	// The record is built after the header in the body's own buffer and
	// sealed in place: the caller's plaintext is only read.
	rec := body[HeaderLen : HeaderLen+padded+1]
	copy(rec, plaintext)
	rec[len(plaintext)] = recordDelimiter
	clear(rec[len(plaintext)+1:])
	return gcm.Seal(body[:HeaderLen], nonce, rec, nil), nil
}

// contentKeys runs the RFC 8291 §3.4 key schedule and returns the content
// encryption cipher and the record's nonce:
//
//	IKM   = HKDF(salt=auth, ikm=ecdh_secret, info="WebPush: info"‖0‖ua_pub‖as_pub, 32)
//	PRK   = HKDF-Extract(salt, IKM)
//	CEK   = HKDF-Expand(PRK, "Content-Encoding: aes128gcm"‖0, 16)
//	NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce"‖0, 12)
//
// With one record the sequence number is 0, so NONCE is used as is.
func contentKeys(secret, auth, uaPub, asPub, salt []byte) (cipher.AEAD, []byte, error) {
	info := make([]byte, 0, len(infoWebPush)+2*PublicKeyLen)
	info = append(info, infoWebPush...)
	info = append(info, uaPub...)
	info = append(info, asPub...)
	ikm, err := hkdf.Key(sha256.New, secret, auth, string(info), 32)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	cek, err := hkdf.Expand(sha256.New, prk, infoCEK, 16)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	nonce, err := hkdf.Expand(sha256.New, prk, infoNonce, 12)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: hkdf: %w", err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: gcm: %w", err)
	}
	return gcm, nonce, nil
}

// ErrDecrypt is returned by Decrypt for a body that is not a push
// message for the given keys.
var ErrDecrypt = errors.New("webpush: cannot decrypt")

// Decrypt reverses Encrypt as the browser does, with the browser's private
// key and authentication secret: it reads the header, derives the keys,
// opens the one record and strips the padding. tilecast itself never
// receives pushes; tests and tools use Decrypt to check what was sent
// (and to read requests made by other implementations). Errors wrap
// ErrDecrypt.
func Decrypt(body []byte, uaPriv *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	if len(body) < HeaderLen+TagLen+1 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than header, delimiter and tag", ErrDecrypt, len(body))
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if idlen != PublicKeyLen {
		return nil, fmt.Errorf("%w: key id of %d bytes, want %d (the sender's public key)", ErrDecrypt, idlen, PublicKeyLen)
	}
	asPub := body[21:HeaderLen]
	ct := body[HeaderLen:]
	if rs < 18 {
		return nil, fmt.Errorf("%w: record size %d is below 18", ErrDecrypt, rs)
	}
	if uint64(len(ct)) > uint64(rs) {
		return nil, fmt.Errorf("%w: %d bytes of records with record size %d: more than one record", ErrDecrypt, len(ct), rs)
	}
	if len(auth) != AuthLen {
		return nil, fmt.Errorf("%w: auth secret of %d bytes", ErrDecrypt, len(auth))
	}
	peer, err := ecdh.P256().NewPublicKey(asPub)
	if err != nil {
		return nil, fmt.Errorf("%w: sender key is not a point on P-256", ErrDecrypt)
	}
	secret, err := uaPriv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: ecdh: %v", ErrDecrypt, err)
	}
	gcm, nonce, err := contentKeys(secret, auth, uaPriv.PublicKey().Bytes(), asPub, salt)
	if err != nil {
		return nil, err
	}
	rec, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (wrong keys or a damaged body)", ErrDecrypt)
	}
	i := len(rec) - 1
	for i >= 0 && rec[i] == 0 {
		i--
	}
	if i < 0 || rec[i] != recordDelimiter {
		return nil, fmt.Errorf("%w: the record does not end with the last-record delimiter 0x02", ErrDecrypt)
	}
	return rec[:i], nil
}
