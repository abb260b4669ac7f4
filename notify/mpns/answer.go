package mpns

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// quickAnswer reads the common MPNS answer straight from br's buffer: an
// HTTP/1.1 final status, plain header lines and a Content-Length body,
// all already received. Anything else (interim answers, chunked or
// unframed bodies, folded or odd lines, a partial read) is declined with
// ok false and nothing consumed, and http.ReadResponse reads it instead.
// Profiled, ReadResponse was a tenth of a fan-out's CPU; what this accepts
// it parses to the same status, header map, framing and close flag
// (FuzzQuickAnswer checks it against ReadResponse).
func quickAnswer(br *bufio.Reader) (a answer, close, ok bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return answer{}, false, false
	}
	head := buf[:end+2] // each line with its CRLF
	line, rest := cutLine(head)
	// "HTTP/1.1 200 OK" or "HTTP/1.1 200"
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return answer{}, false, false
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return answer{}, false, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 200 || status > 599 || !plainText(line[12:]) {
		return answer{}, false, false
	}
	h := make(http.Header, 8)
	length := int64(-1)
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return answer{}, false, false
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validName(name) || !plainText(value) {
			return answer{}, false, false
		}
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		switch key {
		case "Content-Length":
			if length >= 0 {
				return answer{}, false, false
			}
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || value[0] == '+' {
				return answer{}, false, false
			}
			length = n
		case "Connection":
			switch {
			case bytes.EqualFold(value, []byte("keep-alive")):
			case bytes.EqualFold(value, []byte("close")):
				close = true
				continue // ReadResponse drops it too
			default:
				return answer{}, false, false
			}
		case "Transfer-Encoding", "Trailer":
			return answer{}, false, false
		}
		h[key] = append(h[key], string(value))
	}
	if close && len(h["Connection"]) > 0 {
		return answer{}, false, false // keep-alive and close together
	}
	body := length
	if status == http.StatusNoContent || status == http.StatusNotModified {
		body = 0
	} else if length < 0 || length > maxResponseBody {
		return answer{}, false, false
	}
	if int64(len(buf)-end-4) < body {
		return answer{}, false, false // the body is not all here yet
	}
	_, _ = br.Discard(end + 4 + int(body))
	return answer{status: status, header: h}, close, true
}

// cutLine splits s after its first CRLF. The line must not hold a bare CR
// or LF (s always ends with CRLF).
func cutLine(s []byte) (line, rest []byte) {
	i := bytes.Index(s, []byte("\r\n"))
	return s[:i], s[i+2:]
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// plainText accepts printable ASCII, spaces and tabs: no control bytes
// (which also excludes bare CR and LF) and nothing the standard parser
// might treat differently (bytes above 0x7e).
func plainText(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c > '~' {
			return false
		}
	}
	return true
}

func validName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}
