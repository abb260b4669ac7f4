package mpns

import (
	"bufio"
	"fmt"
	"io"
	"net/url"

	"github.com/tilecast/tilecast"
)

// DumpRequest writes req as it would go on the wire to uri, for
// `tilecast send --dry-run`: the request line, Host, the headers in their
// order, a blank line and the body bytes, with CRLF line endings.
func DumpRequest(w io.Writer, uri string, req tilecast.Request) error {
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("dump request: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("dump request: %q is not an absolute URL", uri)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "POST %s HTTP/1.1\r\nHost: %s\r\n", u.RequestURI(), u.Host)
	for _, h := range req.Headers {
		fmt.Fprintf(bw, "%s: %s\r\n", h.Name, h.Value)
	}
	bw.WriteString("\r\n")
	bw.Write(req.Body)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dump request: %w", err)
	}
	return nil
}
